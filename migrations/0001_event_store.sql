-- The event store: an append-only log of events, one row per event.
-- Roles ordo_migrator (owner, DDL), ordo_writer and ordo_reader exist before this runs
-- (see deploy/postgres/roles.sql); here they get exactly what they need.

DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO ordo_writer, ordo_reader', current_database());
END
$$;

CREATE SCHEMA ordo;
CREATE SCHEMA read;  -- read models; the only schema the reader role can see
GRANT USAGE ON SCHEMA ordo TO ordo_writer;
GRANT USAGE ON SCHEMA read TO ordo_writer, ordo_reader;

CREATE TABLE ordo.events (
    global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    transaction_id  xid8        NOT NULL DEFAULT pg_current_xact_id(),
    stream_id       text        NOT NULL,
    category        text        NOT NULL,
    stream_version  bigint      NOT NULL CHECK (stream_version >= 1),
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,
    schema_version  integer     NOT NULL DEFAULT 1,
    payload         jsonb       NOT NULL,
    metadata        jsonb       NOT NULL DEFAULT '{}',
    recorded_at     timestamptz NOT NULL DEFAULT now(),
    CONSTRAINT events_stream_version_key UNIQUE (stream_id, stream_version),
    CONSTRAINT events_event_id_key UNIQUE (event_id)
);
-- Subscribers read in (transaction_id, global_position) order below the xid horizon.
CREATE INDEX events_commit_order_idx ON ordo.events (transaction_id, global_position);
CREATE INDEX events_trace_idx ON ordo.events ((metadata->>'trace_id'));

-- One row per stream: its current version. Appenders lock this row, so appends to one
-- stream serialize and "any" needs no retry, while other streams proceed in parallel.
CREATE TABLE ordo.streams (
    stream_id text PRIMARY KEY,
    version   bigint NOT NULL
);

CREATE TABLE ordo.snapshots (
    stream_id      text PRIMARY KEY,
    stream_version bigint NOT NULL,
    schema_version integer NOT NULL,
    state          jsonb NOT NULL,
    taken_at       timestamptz NOT NULL DEFAULT now()
);

CREATE FUNCTION ordo.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'ordo.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER events_append_only BEFORE UPDATE OR DELETE ON ordo.events
    FOR EACH ROW EXECUTE FUNCTION ordo.refuse_event_change();
CREATE TRIGGER events_no_truncate BEFORE TRUNCATE ON ordo.events
    FOR EACH STATEMENT EXECUTE FUNCTION ordo.refuse_event_change();

-- Appends a batch of events to one stream in the caller's transaction.
--   p_expected: -1 any, 0 no stream, n > 0 exactly version n.
--   p_events:   [{"event_id", "type", "schema_version", "payload", "metadata"}, ...]
-- Returns one row per event, or a single row whose outcome is 'conflict' (actual version
-- in out_actual_version) or 'reused' (out_detail names the event id).
-- Re-appending events that are already stored at the same place returns their original
-- versions and positions with outcome 'replayed' and writes nothing.
CREATE FUNCTION ordo.append_events(p_stream text, p_expected bigint, p_events jsonb)
RETURNS TABLE (out_outcome text, out_actual_version bigint, out_version bigint,
               out_position bigint, out_transaction_id text, out_detail text)
LANGUAGE plpgsql
SET search_path = ordo, pg_temp
AS $$
DECLARE
    v_current  bigint;
    v_count    integer := jsonb_array_length(p_events);
    v_found    integer;
    v_same     boolean;
    v_places   integer;
    v_base     bigint;
    v_bad      text;
BEGIN
    SELECT s.version INTO v_current FROM streams s WHERE s.stream_id = p_stream FOR UPDATE;
    IF NOT FOUND THEN
        INSERT INTO streams (stream_id, version) VALUES (p_stream, 0) ON CONFLICT DO NOTHING;
        SELECT s.version INTO v_current FROM streams s WHERE s.stream_id = p_stream FOR UPDATE;
    END IF;

    -- Holding the stream lock, look for events of this batch that are already stored.
    SELECT count(*),
           bool_and(e.stream_id = p_stream AND e.event_type = r.ev->>'type'
                    AND e.payload = r.ev->'payload'),
           count(DISTINCT e.stream_version - r.ord),
           min(e.stream_version - r.ord),
           min(CASE WHEN e.stream_id <> p_stream OR e.event_type <> r.ev->>'type'
                         OR e.payload <> r.ev->'payload' THEN e.event_id::text END)
      INTO v_found, v_same, v_places, v_base, v_bad
      FROM jsonb_array_elements(p_events) WITH ORDINALITY AS r(ev, ord)
      JOIN events e ON e.event_id = (r.ev->>'event_id')::uuid;

    IF v_found > 0 THEN
        IF v_found < v_count OR NOT v_same OR v_places <> 1 THEN
            IF v_bad IS NULL THEN
                SELECT r.ev->>'event_id' INTO v_bad
                  FROM jsonb_array_elements(p_events) AS r(ev)
                  JOIN events e ON e.event_id = (r.ev->>'event_id')::uuid LIMIT 1;
            END IF;
            RETURN QUERY SELECT 'reused'::text, v_current, NULL::bigint, NULL::bigint,
                                NULL::text, v_bad;
            RETURN;
        END IF;
        IF p_expected >= 0 AND p_expected <> v_base THEN
            RETURN QUERY SELECT 'conflict'::text, v_current, NULL::bigint, NULL::bigint,
                                NULL::text, NULL::text;
            RETURN;
        END IF;
        RETURN QUERY
            SELECT 'replayed'::text, v_current, e.stream_version, e.global_position,
                   e.transaction_id::text, NULL::text
              FROM jsonb_array_elements(p_events) WITH ORDINALITY AS r(ev, ord)
              JOIN events e ON e.event_id = (r.ev->>'event_id')::uuid
             ORDER BY r.ord;
        RETURN;
    END IF;

    IF p_expected >= 0 AND p_expected <> v_current THEN
        RETURN QUERY SELECT 'conflict'::text, v_current, NULL::bigint, NULL::bigint,
                            NULL::text, NULL::text;
        RETURN;
    END IF;

    RETURN QUERY
        WITH inserted AS (
            INSERT INTO events (stream_id, category, stream_version, event_id, event_type,
                                schema_version, payload, metadata)
            SELECT p_stream, split_part(p_stream, '-', 1), v_current + r.ord,
                   (r.ev->>'event_id')::uuid, r.ev->>'type',
                   coalesce((r.ev->>'schema_version')::integer, 1), r.ev->'payload',
                   coalesce(r.ev->'metadata', '{}'::jsonb)
              FROM jsonb_array_elements(p_events) WITH ORDINALITY AS r(ev, ord)
             ORDER BY r.ord
            RETURNING stream_version, global_position, transaction_id
        )
        SELECT 'appended'::text, v_current + v_count, i.stream_version, i.global_position,
               i.transaction_id::text, NULL::text
          FROM inserted i ORDER BY i.stream_version;

    UPDATE streams SET version = v_current + v_count WHERE stream_id = p_stream;
END
$$;

GRANT SELECT, INSERT ON ordo.events TO ordo_writer;
GRANT SELECT, INSERT, UPDATE ON ordo.streams TO ordo_writer;
GRANT SELECT, INSERT, UPDATE ON ordo.snapshots TO ordo_writer;
REVOKE ALL ON FUNCTION ordo.append_events(text, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.append_events(text, bigint, jsonb) TO ordo_writer;
