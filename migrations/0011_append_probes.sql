-- ordo.append_events looks up a batch's event ids in ordo.events (is this batch stored
-- already?). Written as a join of the batch with the table, the planner was free to pick a
-- hash join over a sequential scan of every event, and did whenever the statistics said the
-- table was small: on a young store (autovacuum had not analyzed it yet) and in every session
-- whose cached plan was made then. A plan cached by a pooled session outlives the statistics
-- it was made from, so each append then read the whole table (8 ms at 20,000 events, growing
-- with it). Now each event id is one probe of the unique index, whatever the statistics say:
-- the lookup is a LATERAL subquery the planner cannot flatten into a join (OFFSET 0), and the
-- function runs with sequential scans off, so a probe of events_event_id_key and the streams
-- primary key are the only plans left. Behaviour is unchanged: same outcomes, same rows.
CREATE OR REPLACE FUNCTION ordo.append_events(p_stream text, p_expected bigint, p_events jsonb)
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
