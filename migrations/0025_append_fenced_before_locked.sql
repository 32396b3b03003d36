-- 0024's append, corrected where it did not keep 0023's outcomes (found in review):
-- - a fenced partition was locked before it was refused: an append that waits waited for the
--   stream's row first, and a refusal locked the row; one that does not wait, on a stream
--   another transaction held, answered 'busy' instead of the refusal. The fence is now a
--   condition of the lock statement, probed once before any row is locked, and a stream
--   that is fenced is refused before it is found busy;
-- - the 50 ms lock bound of an append that does not wait was set in the lock statement,
--   after its table locks were taken (a migration holding ordo.streams was waited for
--   without bound). It is set first again, as in 0023.
-- An append to a stream that exists is three statements when it waits (the lock with the
-- fence, the stored-id probe, the insert with the new version) and four when it does not
-- (the lock bound first).
CREATE OR REPLACE FUNCTION ordo.append_events(p_stream text, p_expected bigint, p_events jsonb,
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
BEGIN
    IF p_wait IS FALSE THEN
        -- For the rest of this statement's transaction, no lock is waited for longer: a
        -- table's, a stream another transaction is creating, an event id it is inserting.
        PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
    END IF;
    -- The stream's row, locked, unless this shard fences its partition: the fence is probed
    -- once, before any row is locked or waited for (two index probes, since with sequential
    -- scans off a scan's cost would be taken as worth compiling (JIT), at tens of
    -- milliseconds). Without waiting, a row another transaction holds is skipped.
    IF p_wait IS FALSE THEN
        SELECT s.version INTO v_current FROM streams s
         WHERE s.stream_id = p_stream
           AND NOT EXISTS (SELECT FROM partition_fences f
                           WHERE f.partition = (v_hash % (SELECT p.partitions
                                                            FROM partition_fences p
                                                           ORDER BY p.partition
                                                           LIMIT 1))::integer)
           FOR UPDATE OF s SKIP LOCKED;
    ELSE
        SELECT s.version INTO v_current FROM streams s
         WHERE s.stream_id = p_stream
           AND NOT EXISTS (SELECT FROM partition_fences f
                           WHERE f.partition = (v_hash % (SELECT p.partitions
                                                            FROM partition_fences p
                                                           ORDER BY p.partition
                                                           LIMIT 1))::integer)
           FOR UPDATE OF s;
    END IF;
    IF NOT FOUND THEN
        -- Fenced, held by another transaction (when not waiting), or new: in that order.
        IF EXISTS (SELECT FROM partition_fences f
                           WHERE f.partition = (v_hash % (SELECT p.partitions
                                                            FROM partition_fences p
                                                           ORDER BY p.partition
                                                           LIMIT 1))::integer) THEN
            RAISE EXCEPTION 'partition % is not written on this shard: the shard map gives it '
                            'to another shard, or it is being moved',
                            (SELECT (v_hash % p.partitions)::integer FROM partition_fences p
                              ORDER BY p.partition LIMIT 1)
                USING ERRCODE = 'ORD01', HINT = 'read the shard map again and retry';
        END IF;
        IF p_wait IS FALSE AND EXISTS (SELECT FROM streams s WHERE s.stream_id = p_stream) THEN
            RETURN QUERY SELECT 'busy'::text, NULL::bigint, NULL::bigint, NULL::bigint,
                                NULL::text, NULL::text;
            RETURN;
        END IF;
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
        WITH bumped AS (
            UPDATE streams SET version = v_current + v_count WHERE stream_id = p_stream
        ), inserted AS (
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

END
$$;
