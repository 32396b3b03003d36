-- The shard a new projection checkpoint row names: the partition's owner in the map in force,
-- read under a lock that conflicts with the one a move's flip takes before it rebases the
-- partition's checkpoints (EXCLUSIVE on ordo.shard_map, eventstore/partition_move.cpp). A
-- row made while a move flips is then either made before the flip looks (which rebases it)
-- or after the flip has committed (it names the new owner): never made with the old owner
-- and missed. Any number of readers hold the lock together; it lasts until their transaction
-- ends. NULL without a map. Runs as its owner: the readers have no grant on the map's tables.
-- VOLATILE, so that the map is read after the lock is granted, with the flip's commit seen.
CREATE FUNCTION ordo.partition_owner(p_partition integer) RETURNS integer
    LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, ordo AS $$
BEGIN
    LOCK TABLE ordo.shard_map IN ROW SHARE MODE;
    RETURN (SELECT m.owners[p_partition + 1] FROM ordo.shard_map m
             ORDER BY m.version DESC LIMIT 1);
END
$$;
REVOKE ALL ON FUNCTION ordo.partition_owner(integer) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.partition_owner(integer) TO ordo_projector, ordo_sagas;
