-- What the operator console shows beyond the existing admin views (docs/operations.md,
-- "Console").

-- A saga's timeline: each process's start, end, compensation and deadlines, beside its
-- steps. Rows written before this migration show none until their next event or a rebuild.
-- Its trace is the one of the first event the view applied (the placing's), so the console
-- can follow a saga to its trace.
ALTER TABLE read.sagas ADD COLUMN processes jsonb NOT NULL DEFAULT '[]',
                       ADD COLUMN trace_id text;

-- A projection's breaker transitions as the projector that owns the partition saw them: the
-- last few, newest first ({from, to, reason, at}).
ALTER TABLE ordo.projection_status
    ADD COLUMN breaker_transitions jsonb NOT NULL DEFAULT '[]';
GRANT UPDATE (breaker_transitions) ON ordo.projection_status TO ordo_projector, ordo_sagas;
CREATE OR REPLACE VIEW read.projection_status AS
    SELECT projection, partition, instance, breaker, lag_events, lag_seconds, halted_on,
           updated_at,
           (SELECT count(*) FROM ordo.dead_letters d
             WHERE d.projection = s.projection AND d.partition = s.partition
               AND d.status IN ('parked', 'retry_requested', 'skip_requested')) AS dead_letters,
           breaker_transitions
      FROM ordo.projection_status s;

-- Which relay instance leads each shard, since when, and how long committed events have
-- been hidden behind the xid horizon, as the leader last measured it. Written by the leader
-- only, while it holds the shard's lock; `updated_at` tells a stale row from a live one.
ALTER TABLE ordo.relay_checkpoint
    ADD COLUMN leader text,
    ADD COLUMN leader_since timestamptz,
    ADD COLUMN horizon_hidden_seconds float8 NOT NULL DEFAULT 0,
    ADD COLUMN seen_at timestamptz;
GRANT UPDATE (leader, leader_since, horizon_hidden_seconds, seen_at)
    ON ordo.relay_checkpoint TO ordo_relay;
CREATE VIEW read.relays AS
    SELECT shard, leader, leader_since, horizon_hidden_seconds, seen_at,
           transaction_id::text AS transaction_id, global_position, updated_at
      FROM ordo.relay_checkpoint;
GRANT SELECT ON read.relays TO ordo_query;
