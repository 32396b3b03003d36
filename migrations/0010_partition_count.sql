-- The partition count P is part of what the data means: a stream's partition is
-- stream_hash mod P, and the projection checkpoints, the NATS subjects and the consistency
-- tokens' comparisons are all per partition. A service started with another P would apply
-- events to the wrong checkpoints and answer reads against the wrong ones. So the first
-- long-running writer (relay, projector, sagas) that starts records its P here, and every
-- later process compares (see eventstore/topology.hpp); readers and one-shot tools (the
-- query service, `ordo rebuild`) only compare, so that a tool run with a default never
-- decides for the fleet. Changing P is a migration of its own, never a flag.
CREATE TABLE ordo.topology (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    partitions integer NOT NULL CHECK (partitions BETWEEN 1 AND 1024),
    recorded_at timestamptz NOT NULL DEFAULT now()
);

-- Records `requested` if no count is recorded yet; returns the recorded count either way.
-- Runs as its owner, so the services need no grants on the table itself.
CREATE FUNCTION ordo.claim_partition_count(requested integer) RETURNS integer
    LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, ordo AS $$
DECLARE
    recorded integer;
BEGIN
    INSERT INTO ordo.topology (partitions) VALUES (requested) ON CONFLICT (singleton) DO NOTHING;
    SELECT partitions INTO recorded FROM ordo.topology;
    RETURN recorded;
END
$$;
REVOKE ALL ON FUNCTION ordo.claim_partition_count(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.claim_partition_count(integer)
    TO ordo_relay, ordo_projector, ordo_sagas;

-- The recorded count, or NULL while none is: for those that only compare.
CREATE FUNCTION ordo.recorded_partition_count() RETURNS integer
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, ordo AS $$
    SELECT partitions FROM ordo.topology
$$;
REVOKE ALL ON FUNCTION ordo.recorded_partition_count() FROM PUBLIC;
GRANT USAGE ON SCHEMA ordo TO ordo_query;
GRANT EXECUTE ON FUNCTION ordo.recorded_partition_count() TO ordo_query;
