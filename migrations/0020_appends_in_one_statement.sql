-- Appends for less: the stream's hash once per append instead of once per event, triggers
-- that do not run when they have nothing to do, and many appends in one statement.

-- The hash of a row's stream is given by whoever inserts it when it knows it:
-- ordo.append_events computes it once per call (all its rows are one stream's), where the
-- trigger called a PL/pgSQL loop over the stream id's bytes for every row. A row inserted
-- without one (a move's copies) still gets it here. Only the owner inserts rows
-- (ordo.append_events runs as the owner; services have no INSERT on ordo.events).
DROP TRIGGER events_stream_hash ON ordo.events;
CREATE TRIGGER events_stream_hash BEFORE INSERT ON ordo.events
    FOR EACH ROW WHEN (NEW.stream_hash IS NULL) EXECUTE FUNCTION ordo.fill_stream_hash();

-- The durable-commit trigger (0014) changes something only in a session whose commits are not
-- durable; elsewhere (every appender but a projector) it is not even called.
DROP TRIGGER events_commit_durably ON ordo.events;
CREATE TRIGGER events_commit_durably AFTER INSERT ON ordo.events
    FOR EACH STATEMENT
    WHEN (pg_catalog.current_setting('synchronous_commit') IN ('off', 'local'))
    EXECUTE FUNCTION ordo.commit_appends_durably();

-- As in 0017, but for the stream's hash, computed once and inserted with the rows.
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
    v_hash     bigint := stream_hash(p_stream);
    v_found    integer;
    v_same     boolean;
    v_places   integer;
    v_base     bigint;
    v_bad      text;
    v_fences   integer;
BEGIN
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

-- Many appends in one statement: what group commit sends for concurrent appends that are each
-- one statement (eventstore/event_store.cpp). `p_appends` is an array of
-- {"stream": ..., "expected": ..., "events": [...]}, each as ordo.append_events takes them;
-- the rows are append_events' for each item, with the item's place in the array (from 1)
-- first; an item's rows are together and in their order.
--
-- Each item stands alone, so two outcomes are values here where append_events would wait or
-- raise, and the caller runs that item again by itself:
-- - 'busy': another transaction holds the stream's lock. Waiting for it would hold up every
--   other item of the statement; nothing of the item was done.
-- - 'fenced': its partition takes no appends on this shard (append_events raises ORD01).
-- Streams are locked in the order of their ids, so two of these statements never wait for
-- each other in a circle. The statement waits for no lock longer than 50 ms: a stream
-- another transaction is creating, or an event id it is inserting, cannot be found locked
-- beforehand, and a wait for it would hold up every item (and, against a transaction that
-- locks one of this statement's streams next, end in a deadlock). That, or any other error,
-- fails the whole statement, which then did nothing (it is one statement in autocommit), and
-- the caller runs every item again by itself.
CREATE FUNCTION ordo.append_batch(p_appends jsonb)
RETURNS TABLE (out_item integer, out_outcome text, out_actual_version bigint, out_version bigint,
               out_position bigint, out_transaction_id text, out_detail text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ordo, pg_temp
SET enable_seqscan = off
AS $$
DECLARE
    v_item    record;
    v_fences  integer;
BEGIN
    -- For the rest of this statement's transaction.
    PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
    SELECT f.partitions INTO v_fences FROM partition_fences f ORDER BY f.partition LIMIT 1;
    FOR v_item IN
        SELECT a.ord::integer AS item, a.value->>'stream' AS stream,
               (a.value->>'expected')::bigint AS expected, a.value->'events' AS events
          FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS a(value, ord)
         ORDER BY a.value->>'stream' COLLATE "C", a.ord
    LOOP
        IF v_fences IS NOT NULL AND EXISTS (
               SELECT 1 FROM partition_fences f
                WHERE f.partition = (stream_hash(v_item.stream) % v_fences)::integer) THEN
            RETURN QUERY SELECT v_item.item, 'fenced'::text, NULL::bigint, NULL::bigint,
                                NULL::bigint, NULL::text, NULL::text;
            CONTINUE;
        END IF;
        PERFORM FROM streams s WHERE s.stream_id = v_item.stream FOR UPDATE SKIP LOCKED;
        IF NOT FOUND AND EXISTS (SELECT FROM streams s WHERE s.stream_id = v_item.stream) THEN
            RETURN QUERY SELECT v_item.item, 'busy'::text, NULL::bigint, NULL::bigint,
                                NULL::bigint, NULL::text, NULL::text;
            CONTINUE;
        END IF;
        RETURN QUERY
            SELECT v_item.item, a.* FROM append_events(v_item.stream, v_item.expected,
                                                       v_item.events) AS a;
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION ordo.append_batch(jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.append_batch(jsonb) TO ordo_command, ordo_sagas;
