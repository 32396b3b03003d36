-- A shard registered with the map but owning no partition yet (`ordo shards add`) is not in
-- ordo.current_shard_map(): its relay starts before the first move to it, and finds where the
-- shard is here. Runs as its owner, as current_shard_map does: no grant on ordo.shards.
CREATE FUNCTION ordo.registered_shard(shard integer, OUT hosts text, OUT database text)
    LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, ordo AS $$
    SELECT s.hosts, s.database FROM ordo.shards s WHERE s.id = shard
$$;
REVOKE ALL ON FUNCTION ordo.registered_shard(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.registered_shard(integer) TO ordo_relay;
