-- Projector processes announce themselves here; each takes a fair share of the
-- (projection, partition) slots, counted over the instances seen in the last seconds.
CREATE TABLE ordo.projector_instances (
    instance     text PRIMARY KEY,
    heartbeat_at timestamptz NOT NULL
);
GRANT SELECT, INSERT, UPDATE, DELETE ON ordo.projector_instances TO ordo_writer;
