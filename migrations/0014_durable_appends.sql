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
-- So an insert into ordo.events puts the transaction back to a durable setting, for this
-- transaction only: the session's reset value ('on', or 'remote_apply' on a synchronous
-- standby pair), or 'on' where even that is off or local (a role, database or connection
-- configured so). A transaction that appends nothing keeps its session's choice. A savepoint
-- rolled back undoes the change together with the rows it was made for.
CREATE OR REPLACE FUNCTION ordo.commit_appends_durably() RETURNS trigger
LANGUAGE plpgsql
SET search_path = ordo, pg_temp
AS $$
DECLARE
    v_durable text;
BEGIN
    IF current_setting('synchronous_commit') IN ('off', 'local') THEN
        SELECT CASE WHEN reset_val IN ('off', 'local') THEN 'on' ELSE reset_val END
          INTO v_durable FROM pg_catalog.pg_settings WHERE name = 'synchronous_commit';
        -- Transaction-local. Not a SET clause on the function: that would end with it.
        PERFORM pg_catalog.set_config('synchronous_commit', v_durable, true);
    END IF;
    RETURN NULL;
END;
$$;

CREATE TRIGGER events_commit_durably AFTER INSERT ON ordo.events
    FOR EACH STATEMENT EXECUTE FUNCTION ordo.commit_appends_durably();
-- Rows reach ordo.events only through ordo.append_events, which runs as the owner.
REVOKE ALL ON FUNCTION ordo.commit_appends_durably() FROM PUBLIC;
