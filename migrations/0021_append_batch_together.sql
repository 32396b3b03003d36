-- ordo.append_batch (0020) set-based: the common case of a batch (each stream's first append,
-- its stream found free or new, none of its event ids stored or in another append of the
-- batch, at the version it expects) in one lock, one create, one lookup and one
-- insert-and-bump statement for all of them, where 0020 made seven statements of every
-- append. The rest (a stream's later appends, replays, reused ids, conflicts) then go one at
-- a time through ordo.append_events, in the order of their streams, holding the locks already
-- taken. The outcomes are those of the appends made one after another, each stream's in the
-- order of the array (the common case first); 'busy', 'fenced' and the 50 ms bound on lock
-- waits are 0020's. Existing streams are locked without waiting (SKIP LOCKED), new ones
-- created in the order of their ids, so two of these statements never wait in a circle. One
-- append alone goes as in 0020. JIT is off: compiling never pays for statements this small,
-- and nested set-returning functions' row estimates could reach its threshold.
CREATE OR REPLACE FUNCTION ordo.append_batch(p_appends jsonb)
RETURNS TABLE (out_item integer, out_outcome text, out_actual_version bigint, out_version bigint,
               out_position bigint, out_transaction_id text, out_detail text)
LANGUAGE plpgsql
SECURITY DEFINER
SET search_path = ordo, pg_temp
SET enable_seqscan = off
SET jit = off
AS $$
DECLARE
    v_item      record;
    v_fences    integer;
    v_streams   text[];
    v_fenced    text[] := '{}';
    v_locked    text[];
    v_versions  bigint[];
    v_busy      text[];
    v_created   text[];
    v_stored    integer[];
    v_fast      integer[] := '{}';
BEGIN
    -- For the rest of this statement's transaction.
    PERFORM pg_catalog.set_config('lock_timeout', '50ms', true);
    SELECT f.partitions INTO v_fences FROM partition_fences f ORDER BY f.partition LIMIT 1;
    IF jsonb_array_length(p_appends) = 1 THEN
        -- One append: as in 0020, a probe of its stream's lock and the call.
        SELECT a->>'stream' AS stream, (a->>'expected')::bigint AS expected,
               a->'events' AS events
          INTO v_item FROM jsonb_array_elements(p_appends) AS x(a);
        IF v_fences IS NOT NULL AND EXISTS (
               SELECT 1 FROM partition_fences f
                WHERE f.partition = (stream_hash(v_item.stream) % v_fences)::integer) THEN
            RETURN QUERY SELECT 1, 'fenced'::text, NULL::bigint, NULL::bigint, NULL::bigint,
                                NULL::text, NULL::text;
            RETURN;
        END IF;
        PERFORM FROM streams s WHERE s.stream_id = v_item.stream FOR UPDATE SKIP LOCKED;
        IF NOT FOUND AND EXISTS (SELECT FROM streams s WHERE s.stream_id = v_item.stream) THEN
            RETURN QUERY SELECT 1, 'busy'::text, NULL::bigint, NULL::bigint, NULL::bigint,
                                NULL::text, NULL::text;
            RETURN;
        END IF;
        RETURN QUERY SELECT 1, a.* FROM append_events(v_item.stream, v_item.expected,
                                                      v_item.events) AS a;
        RETURN;
    END IF;

    -- The streams, but those whose partition is fenced here.
    SELECT array_agg(DISTINCT a.value->>'stream') INTO v_streams
      FROM jsonb_array_elements(p_appends) AS a(value);
    IF v_fences IS NOT NULL THEN
        SELECT coalesce(array_agg(s.id), '{}') INTO v_fenced FROM unnest(v_streams) AS s(id)
         WHERE EXISTS (SELECT 1 FROM partition_fences f
                        WHERE f.partition = (stream_hash(s.id) % v_fences)::integer);
        v_streams := ARRAY(SELECT s.id FROM unnest(v_streams) AS s(id) WHERE s.id <> ALL (v_fenced));
    END IF;
    -- Lock the streams that exist, in the order of their ids, skipping those another
    -- transaction holds; then create the new ones, in the same order.
    SELECT coalesce(array_agg(l.stream_id), '{}'), coalesce(array_agg(l.version), '{}')
      INTO v_locked, v_versions
      FROM (SELECT s.stream_id, s.version FROM streams s WHERE s.stream_id = ANY (v_streams)
             ORDER BY s.stream_id FOR UPDATE SKIP LOCKED) AS l;
    SELECT coalesce(array_agg(s.stream_id), '{}') INTO v_busy FROM streams s
     WHERE s.stream_id = ANY (v_streams) AND s.stream_id <> ALL (v_locked);
    WITH c AS (
        INSERT INTO streams (stream_id, version)
        SELECT s.id, 0 FROM unnest(v_streams) AS s(id)
         WHERE s.id <> ALL (v_locked) AND s.id <> ALL (v_busy)
         ORDER BY s.id COLLATE "C"
        ON CONFLICT DO NOTHING RETURNING stream_id)
    SELECT coalesce(array_agg(c.stream_id), '{}') INTO v_created FROM c;
    -- Created meanwhile by another transaction that has committed: busy too.
    v_busy := v_busy || ARRAY(SELECT s.id FROM unnest(v_streams) AS s(id)
                               WHERE s.id <> ALL (v_locked) AND s.id <> ALL (v_created));
    v_locked := v_locked || v_created;
    v_versions := v_versions || array_fill(0::bigint, ARRAY[cardinality(v_created)]);
    -- Items with an event id already stored (replays, or ids reused), or in another item of
    -- the batch: one at a time, they replay, conflict or are refused as reused.
    -- A probe of the index per id (LATERAL ... LIMIT 1): written as EXISTS beside the OR, the
    -- planner hashed every stored id instead, a scan that grows with the store.
    SELECT coalesce(array_agg(DISTINCT x.item), '{}') INTO v_stored
      FROM (SELECT a.ord::integer AS item, e.ev->>'event_id' AS id,
                   count(*) OVER (PARTITION BY e.ev->>'event_id') AS uses
              FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS a(value, ord)
             CROSS JOIN LATERAL jsonb_array_elements(a.value->'events') AS e(ev)) AS x
      LEFT JOIN LATERAL (SELECT true AS hit FROM events s
                          WHERE s.event_id = x.id::uuid LIMIT 1) AS stored ON true
     WHERE x.uses > 1 OR stored.hit;

    -- The common case, together: each stream's first item, its stream held, none of its
    -- event ids stored, at the version it expects.
    SELECT coalesce(array_agg(i.item), '{}') INTO v_fast
      FROM (SELECT a.ord::integer AS item, a.value->>'stream' AS stream,
                   (a.value->>'expected')::bigint AS expected,
                   row_number() OVER (PARTITION BY a.value->>'stream' ORDER BY a.ord) AS nth
              FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS a(value, ord)) AS i
      JOIN unnest(v_locked, v_versions) AS h(stream, version) ON h.stream = i.stream
     WHERE i.nth = 1 AND i.item <> ALL (v_stored) AND (i.expected < 0 OR i.expected = h.version);
    IF cardinality(v_fast) > 0 THEN
        RETURN QUERY
            WITH fast AS (
                SELECT a.ord::integer AS item, h.stream, a.value->'events' AS events, h.version,
                       jsonb_array_length(a.value->'events') AS n, stream_hash(h.stream) AS hash
                  FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS a(value, ord)
                  JOIN unnest(v_locked, v_versions) AS h(stream, version)
                    ON h.stream = a.value->>'stream'
                 WHERE a.ord::integer = ANY (v_fast)),
            inserted AS (
                INSERT INTO events (stream_id, category, stream_version, event_id, event_type,
                                    schema_version, payload, metadata, stream_hash)
                SELECT f.stream, split_part(f.stream, '-', 1), f.version + r.ord,
                       (r.ev->>'event_id')::uuid, r.ev->>'type',
                       coalesce((r.ev->>'schema_version')::integer, 1), r.ev->'payload',
                       coalesce(r.ev->'metadata', '{}'::jsonb), f.hash
                  FROM fast f
                 CROSS JOIN LATERAL jsonb_array_elements(f.events) WITH ORDINALITY AS r(ev, ord)
                 ORDER BY f.item, r.ord
                RETURNING stream_id, stream_version, global_position, transaction_id),
            bumped AS (
                UPDATE streams s SET version = f.version + f.n FROM fast f
                 WHERE s.stream_id = f.stream)
            SELECT f.item, 'appended'::text, f.version + f.n, i.stream_version, i.global_position,
                   i.transaction_id::text, NULL::text
              FROM inserted i JOIN fast f ON f.stream = i.stream_id
             ORDER BY f.item, i.stream_version;
    END IF;
    -- The rest one at a time, in the order of their streams: a stream's later items, events
    -- already stored (replays, reused ids), versions not as expected.
    FOR v_item IN
        SELECT a.ord::integer AS item, a.value->>'stream' AS stream,
               (a.value->>'expected')::bigint AS expected, a.value->'events' AS events
          FROM jsonb_array_elements(p_appends) WITH ORDINALITY AS a(value, ord)
         WHERE a.ord::integer <> ALL (v_fast)
         ORDER BY a.value->>'stream' COLLATE "C", a.ord
    LOOP
        IF v_item.stream = ANY (v_fenced) OR v_item.stream = ANY (v_busy) THEN
            RETURN QUERY SELECT v_item.item,
                                CASE WHEN v_item.stream = ANY (v_fenced) THEN 'fenced'
                                     ELSE 'busy' END,
                                NULL::bigint, NULL::bigint, NULL::bigint, NULL::text, NULL::text;
        ELSE
            RETURN QUERY
                SELECT v_item.item, a.* FROM append_events(v_item.stream, v_item.expected,
                                                           v_item.events) AS a;
        END IF;
    END LOOP;
END
$$;
