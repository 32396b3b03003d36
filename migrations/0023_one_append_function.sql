-- One append function again. 0020's ordo.append_events and 0022's ordo.append_events_nowait
-- were two copies of one body that differed only in how the stream's lock is taken; a change
-- to the append had to be made in both. Now p_wait chooses:
-- - true (the default, so every three-argument call keeps its meaning): the stream's lock is
--   waited for, as 0020 did;
-- - false, for a lone append made in autocommit (eventstore/event_store.cpp): a stream
--   another transaction holds answers 'busy' (one row, the rest NULL) and nothing is done,
--   and no lock is waited for longer than 50 ms for the rest of the statement's transaction
--   (a stream another transaction is creating, an event id it is inserting): the statement
--   then fails and did nothing. Either way the caller runs the append again with p_wait.
-- One function with a branch, not a wrapper around a shared body: a nested PL/pgSQL call
-- costs a lone append about 0.1 ms (docs/performance.md, "Appends in one statement").
DROP FUNCTION ordo.append_events(text, bigint, jsonb);
CREATE FUNCTION ordo.append_events(p_stream text, p_expected bigint, p_events jsonb,
                                   p_wait boolean DEFAULT true)
RETURNS TABLE (out_outcome text, out_actual_version bigint, out_version bigint,
               out_position bigint, out_transaction_id text, out_detail text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ordo, pg_temp
SET enable_seqscan = off
AS $$
DECLARE
    v_current  bigint;
    v_count    integer := jsonb_array_length(p_events);
    v_hash     bigint := stream_hash(p_stream);
    v_found    integer;
    v_same     boolean;
    v_places   integer;
    v_base     bigint;
    v_bad      text;
    v_fences   integer;
BEGIN
    IF NOT p_wait THEN
        -- For the rest of this statement's transaction: no lock is waited for longer.
        PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
    END IF;
    -- A fenced partition takes no appends. One probe while there are no fences: of the
    -- index, since with sequential scans off a scan's cost would be taken as worth compiling
    -- (JIT), at tens of milliseconds a call.
    SELECT f.partitions INTO v_fences FROM partition_fences f ORDER BY f.partition LIMIT 1;
    IF v_fences IS NOT NULL AND EXISTS (
           SELECT 1 FROM partition_fences f WHERE f.partition = (v_hash % v_fences)::integer) THEN
        RAISE EXCEPTION 'partition % is not written on this shard: the shard map gives it to '
                        'another shard, or it is being moved', (v_hash % v_fences)::integer
            USING ERRCODE = 'ORD01', HINT = 'read the shard map again and retry';
    END IF;
    IF p_wait THEN
        SELECT s.version INTO v_current FROM streams s WHERE s.stream_id = p_stream FOR UPDATE;
    ELSE
        SELECT s.version INTO v_current FROM streams s WHERE s.stream_id = p_stream
           FOR UPDATE SKIP LOCKED;
        IF NOT FOUND AND EXISTS (SELECT FROM streams s WHERE s.stream_id = p_stream) THEN
            RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::bigint, NULL::bigint,
                                NULL::text, NULL::text;
            RETURN;
        END IF;
    END IF;
    IF v_current IS NULL THEN
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
      CROSS JOIN LATERAL (
          SELECT s.stream_id, s.event_type, s.payload, s.stream_version, s.event_id
            FROM events s WHERE s.event_id = (r.ev->>'event_id')::uuid OFFSET 0) e;

    IF v_found > 0 THEN
        IF v_found < v_count OR NOT v_same OR v_places <> 1 THEN
            IF v_bad IS NULL THEN
                SELECT r.ev->>'event_id' INTO v_bad
                  FROM jsonb_array_elements(p_events) AS r(ev)
                 WHERE EXISTS (SELECT FROM events s
                                WHERE s.event_id = (r.ev->>'event_id')::uuid)
                 LIMIT 1;
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
              CROSS JOIN LATERAL (
                  SELECT s.stream_version, s.global_position, s.transaction_id
                    FROM events s WHERE s.event_id = (r.ev->>'event_id')::uuid OFFSET 0) e
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
                                schema_version, payload, metadata, stream_hash)
            SELECT p_stream, split_part(p_stream, '-', 1), v_current + r.ord,
                   (r.ev->>'event_id')::uuid, r.ev->>'type',
                   coalesce((r.ev->>'schema_version')::integer, 1), r.ev->'payload',
                   coalesce(r.ev->'metadata', '{}'::jsonb), v_hash
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
REVOKE ALL ON FUNCTION ordo.append_events(text, bigint, jsonb, boolean) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.append_events(text, bigint, jsonb, boolean)
    TO ordo_command, ordo_sagas;

-- What services of the release before this one call for a lone append, while a rolling
-- upgrade still runs them; no current service does. Drop it in a later migration.
CREATE OR REPLACE FUNCTION ordo.append_events_nowait(p_stream text, p_expected bigint,
                                                    p_events jsonb)
RETURNS TABLE (out_outcome text, out_actual_version bigint, out_version bigint,
               out_position bigint, out_transaction_id text, out_detail text)
LANGUAGE sql
SECURITY DEFINER
SET search_path = ordo, pg_temp
AS $$ SELECT * FROM ordo.append_events(p_stream, p_expected, p_events, false) $$;
