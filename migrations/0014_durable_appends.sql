-- A transaction that appends events commits durably, whatever its session asked for.
--
-- Projector sessions commit with synchronous_commit = off: their read-model rows and
-- checkpoint are lost together in a crash and simply applied again. But some projections
-- append events (the saga intake starts processes), and an asynchronous commit is visible
-- before it is on disk: the relay could publish such an event, read models and the saga
-- runner act on it, and a crash of PostgreSQL then forget it, so that the intake appended it
-- again under a new position. Events are the truth every other part follows; they must
-- never be seen and then lost.
--
-- So the first insert into ordo.events puts the transaction back to the cluster's own
-- setting (the value a RESET would give: 'on', or 'remote_apply' on a synchronous standby
-- pair), for this transaction only. A transaction that appends nothing keeps its session's
-- choice. A savepoint rolled back undoes the change together with the rows it was made for.
CREATE OR REPLACE FUNCTION ordo.commit_appends_durably() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ordo, pg_temp
AS $$
DECLARE
    v_default text;
BEGIN
    IF current_setting('synchronous_commit') IN ('off', 'local') THEN
        SELECT reset_val INTO v_default FROM pg_catalog.pg_settings
         WHERE name = 'synchronous_commit';
        IF v_default NOT IN ('off', 'local') THEN
            -- Transaction-local. Not a SET clause on the function: that would end with it.
            PERFORM pg_catalog.set_config('synchronous_commit', v_default, true);
        END IF;
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_commit_durably AFTER INSERT ON ordo.events
    FOR EACH STATEMENT EXECUTE FUNCTION ordo.commit_appends_durably();
-- Rows reach ordo.events only through ordo.append_events, which runs as the owner.
REVOKE ALL ON FUNCTION ordo.commit_appends_durably() FROM PUBLIC;
