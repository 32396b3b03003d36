-- Moving a partition from one shard to another (`ordo shards move`, docs/scaling.md).

-- On every shard: the partitions it takes no writes for. A shard fences each partition the
-- map gives to another (`ordo shards init`), and a move fences the partition it takes away
-- before copying it. All rows name the store's one partition count. `removable` is set only
-- by a move, for as long as it deletes a partition's rows it has verified elsewhere (or the
-- copies of a move rolled back); nothing else may delete events.
CREATE TABLE ordo.partition_fences (
    partition  integer PRIMARY KEY CHECK (partition >= 0 AND partition < partitions),
    partitions integer NOT NULL CHECK (partitions BETWEEN 1 AND 1024),
    removable  boolean NOT NULL DEFAULT false,
    fenced_at  timestamptz NOT NULL DEFAULT now()
);
-- Every service reads them: a key claim on a fenced partition is refused, and so is reading
-- a stream there that is not (or no longer) on this shard (eventstore/event_store.cpp).
GRANT SELECT ON ordo.partition_fences
    TO ordo_command, ordo_relay, ordo_projector, ordo_sagas, ordo_query;

-- An event a move copied here: the shard it came from. NULL: appended on this shard. The
-- relay publishes no copy (its original was published), but takes it as its partition's
-- latest event, so the chain of the partition's next event continues from it.
ALTER TABLE ordo.events ADD COLUMN moved_from integer;

-- The stream a command ran on, so that a move takes the command's row with the stream and a
-- replay of the request after the move finds it. NULL on rows written before this column.
-- Not indexed: only a move looks rows up by it, and the log is kept short by expiry.
ALTER TABLE ordo.command_log ADD COLUMN stream_id text;

-- Appends to a fenced partition are refused. Services append only through
-- ordo.append_events (below, as in 0011 but for the check at its start); the owner's own
-- inserts are a move's copies, which land on a shard while it still fences their partition.
-- Checked once per call, on the stream's hash, not in a trigger over the inserted rows.
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
    v_fences   integer;
BEGIN
    -- A fenced partition takes no appends (below). One probe while there are no fences: of
    -- the index, since with sequential scans off a scan's cost would be taken as worth
    -- compiling (JIT), at tens of milliseconds a call.
    SELECT f.partitions INTO v_fences FROM partition_fences f ORDER BY f.partition LIMIT 1;
    IF v_fences IS NOT NULL AND EXISTS (
           SELECT 1 FROM partition_fences f
            WHERE f.partition = (stream_hash(p_stream) % v_fences)::integer) THEN
        RAISE EXCEPTION 'partition % is not written on this shard: the shard map gives it to '
                        'another shard, or it is being moved',
                        (stream_hash(p_stream) % v_fences)::integer
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

-- Events stay append-only. The one exception: a move deletes the rows of a partition whose
-- fence it has marked removable (verified on the shard that now owns them, or copies of a
-- move rolled back). Only the owner can mark a fence so.
CREATE OR REPLACE FUNCTION ordo.refuse_event_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND EXISTS (
           SELECT 1 FROM ordo.partition_fences f
            WHERE f.removable AND f.partition = (OLD.stream_hash % f.partitions)::integer) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'ordo.events is append-only: % refused', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END
$$;

-- The stream rows' guard let the owner update them but, returning NEW (NULL) for a DELETE,
-- silently kept every row it was asked to delete: a move deletes the moved partition's.
CREATE OR REPLACE FUNCTION ordo.refuse_stream_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        RAISE EXCEPTION 'ordo.streams changes only through ordo.append_events: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$$;

-- In the control database: every move, one at a time per partition. `step` is where a move
-- stands, each step re-runnable: fencing (the partition's writes being stopped on its shard),
-- copying (stopped; its rows being copied), flipping (copied and verified; the map and the
-- checkpoints not yet changed), removing (the map gives the partition to `to_shard`; the
-- old rows being deleted), then done; or rolled_back, before the map changed.
CREATE TABLE ordo.partition_moves (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    partition   integer NOT NULL CHECK (partition BETWEEN 0 AND 1023),
    from_shard  integer NOT NULL,
    to_shard    integer NOT NULL CHECK (to_shard <> from_shard),
    step        text NOT NULL DEFAULT 'fencing'
        CHECK (step IN ('fencing', 'copying', 'flipping', 'removing', 'done', 'rolled_back')),
    events      bigint,  -- what verification counted on both shards
    digest      text,    -- and the digest of both, in commit order
    started_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
);
CREATE UNIQUE INDEX partition_moves_one_at_a_time ON ordo.partition_moves (partition)
    WHERE step NOT IN ('done', 'rolled_back');
-- `ordo rebuild` refuses to run while a partition is half moved.
GRANT SELECT ON ordo.partition_moves
    TO ordo_command, ordo_relay, ordo_projector, ordo_sagas, ordo_query;

-- Which shard's commit order a checkpoint's position is in. NULL: the partition's owner in
-- the map (an unsharded store, and rows written before a move). A move sets it with the
-- position it rebases, in the transaction that changes the map, so a reader that still
-- holds the old map reads the partition from where its checkpoint is.
ALTER TABLE ordo.projection_checkpoints ADD COLUMN shard integer;
GRANT UPDATE (shard) ON ordo.projection_checkpoints TO ordo_projector, ordo_sagas;

-- Rows written before this column, over a map already written: their shard is their owner's.
UPDATE ordo.projection_checkpoints c
   SET shard = m.owners[c.partition + 1]
  FROM (SELECT owners FROM ordo.shard_map ORDER BY version DESC LIMIT 1) m
 WHERE c.shard IS NULL AND c.partition < cardinality(m.owners);

-- The query service compares a consistency token only with the checkpoints in its shard's
-- commit order (query/parked_waits.hpp).
CREATE OR REPLACE VIEW read.projection_progress AS
    SELECT projection, partition, transaction_id::text AS transaction_id, global_position,
           last_event_at, owner, updated_at, shard
      FROM ordo.projection_checkpoints;
