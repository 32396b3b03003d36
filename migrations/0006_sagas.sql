-- Saga processes that need attention: woken by the intake (a new fact), a retry that is due,
-- or a deadline. Runners claim due rows with FOR UPDATE SKIP LOCKED and hold a lease while
-- they work, so several runners share the processes and a dead runner's lease runs out.
CREATE TABLE ordo.saga_schedule (
    stream_id    text PRIMARY KEY,
    due_at       timestamptz NOT NULL,
    leased_until timestamptz
);

CREATE INDEX saga_schedule_due ON ordo.saga_schedule (due_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON ordo.saga_schedule TO ordo_writer;

-- The saga runner's intake runs on the projection runtime too; runtimes share slots only
-- with runtimes of their own group.
ALTER TABLE ordo.projector_instances
    ADD COLUMN runtime_group text NOT NULL DEFAULT 'projector';
