-- A store sharded over several PostgreSQL databases (docs/scaling.md): which shards there are
-- and which shard owns each partition. Kept in the control database, the one every service is
-- pointed at with --database-url; in every other database these tables stay empty. A store
-- without a map is one shard: the database itself.
CREATE TABLE ordo.shards (
    id integer PRIMARY KEY CHECK (id BETWEEN 0 AND 255),
    -- libpq's host list ("db1:5432" or "db1:5432,db2:5432") and the database: no credentials,
    -- every service connects to a shard with its own role.
    hosts text NOT NULL CHECK (length(hosts) BETWEEN 1 AND 255),
    database text NOT NULL CHECK (database ~ '^[a-z_][a-z0-9_]{0,62}$'),
    added_at timestamptz NOT NULL DEFAULT now()
);

-- Each change of the map is a new version; the newest is the map in force. owners[p + 1] is
-- the shard of partition p (stream_hash mod cardinality(owners)).
CREATE TABLE ordo.shard_map (
    version bigint PRIMARY KEY CHECK (version >= 1),
    owners integer[] NOT NULL CHECK (cardinality(owners) BETWEEN 1 AND 1024),
    written_at timestamptz NOT NULL DEFAULT now()
);

-- The map in force with the locations of its shards, or a row of NULLs when none is written.
-- Runs as its owner, so the services need no grants on the tables themselves.
CREATE FUNCTION ordo.current_shard_map(OUT version bigint, OUT owners integer[], OUT shards jsonb)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, ordo AS $$
    SELECT m.version, m.owners,
           (SELECT jsonb_agg(jsonb_build_object('id', s.id, 'hosts', s.hosts,
                                                'database', s.database) ORDER BY s.id)
              FROM ordo.shards s WHERE s.id = ANY (m.owners))
      FROM ordo.shard_map m ORDER BY m.version DESC LIMIT 1
$$;
REVOKE ALL ON FUNCTION ordo.current_shard_map() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.current_shard_map()
    TO ordo_command, ordo_relay, ordo_projector, ordo_sagas, ordo_query;
