-- One role per service, each with only the grants its code uses (docs/security.md has the
-- table and the reasons). The roles ordo_command, ordo_relay, ordo_projector, ordo_sagas
-- and ordo_query exist before this runs (deploy/postgres/roles.sql). The old shared roles
-- ordo_writer and ordo_reader lose every grant here; they stay in the cluster, without
-- LOGIN, only because migrations 0001-0008 name them when a new database is created.
--
-- The event store stays append-only for everyone: no role but the owner has INSERT,
-- UPDATE, DELETE or TRUNCATE on ordo.events, and the owner's UPDATE/DELETE/TRUNCATE are
-- refused by the triggers of 0001. Events enter only through ordo.append_events, which now
-- runs as its owner (SECURITY DEFINER, fixed search_path), so the expected-version check,
-- the stream version and the category are the function's and not the caller's to choose.

DO $$
BEGIN
    EXECUTE format('REVOKE ALL ON DATABASE %I FROM ordo_writer, ordo_reader', current_database());
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO ordo_command, ordo_relay, ordo_projector, '
                   'ordo_sagas, ordo_query', current_database());
END
$$;

-- Take away everything the shared roles had, also on read-model tables a rebuild created
-- (it copies the grants of the tables it replaces).
REVOKE ALL ON ALL TABLES IN SCHEMA ordo, read FROM ordo_writer, ordo_reader;
REVOKE ALL ON ALL FUNCTIONS IN SCHEMA ordo FROM ordo_writer, ordo_reader;
REVOKE ALL ON SCHEMA ordo, read FROM ordo_writer, ordo_reader;

GRANT USAGE ON SCHEMA ordo TO ordo_command, ordo_relay, ordo_projector, ordo_sagas;
GRANT USAGE ON SCHEMA read TO ordo_projector, ordo_query;

-- Appends: through the function only.
ALTER FUNCTION ordo.append_events(text, bigint, jsonb) SECURITY DEFINER;
REVOKE ALL ON FUNCTION ordo.append_events(text, bigint, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION ordo.append_events(text, bigint, jsonb) TO ordo_command, ordo_sagas;

-- Loading an aggregate locks its stream's row (SELECT ... FOR UPDATE), which PostgreSQL
-- allows only to a role with UPDATE on some column. The command and sagas roles get that
-- column, and this trigger refuses any actual change that does not come from
-- ordo.append_events (which runs as the table's owner): a stream's version is the store's.
CREATE FUNCTION ordo.refuse_stream_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF current_user <> (SELECT pg_get_userbyid(relowner) FROM pg_class WHERE oid = TG_RELID) THEN
        RAISE EXCEPTION 'ordo.streams changes only through ordo.append_events: % refused', TG_OP
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER streams_append_only BEFORE UPDATE OR DELETE ON ordo.streams
    FOR EACH ROW EXECUTE FUNCTION ordo.refuse_stream_change();

-- Events: read by every service but the query service.
GRANT SELECT ON ordo.events TO ordo_command, ordo_relay, ordo_projector, ordo_sagas;

-- The command side (the command service, and the sagas service, which runs the same
-- executor in-process for the commands its processes send).
GRANT SELECT ON ordo.streams TO ordo_command, ordo_sagas;
GRANT UPDATE (version) ON ordo.streams TO ordo_command, ordo_sagas;  -- row locks only, above
GRANT SELECT, INSERT, UPDATE ON ordo.snapshots TO ordo_command, ordo_sagas;
GRANT SELECT, INSERT ON ordo.command_log TO ordo_command, ordo_sagas;
GRANT UPDATE (status, response) ON ordo.command_log TO ordo_command, ordo_sagas;
GRANT DELETE ON ordo.command_log TO ordo_command;  -- expiry of old keys runs there

-- Operators' dead-letter requests (the Command API's admin routes and `ordo dead-letters`):
-- the command role sees what a listing shows, not the parked event's payload or metadata,
-- and may only ask (status, requested_at); the guard below keeps the outcome the
-- projector's.
GRANT SELECT (id, projection, partition, transaction_id, global_position, stream_id,
              stream_version, event_id, event_type, error, attempts, policy, status,
              requested_at, created_at, updated_at, resolved_at)
    ON ordo.dead_letters TO ordo_command;
GRANT UPDATE (status, requested_at) ON ordo.dead_letters TO ordo_command;

-- The relay: its own checkpoint.
GRANT SELECT, INSERT ON ordo.relay_checkpoint TO ordo_relay;
GRANT UPDATE (transaction_id, global_position, previous, updated_at)
    ON ordo.relay_checkpoint TO ordo_relay;

-- The projection runtime: the projector service, and the sagas service's intake, which
-- runs on the same runtime.
GRANT SELECT, INSERT ON ordo.projection_checkpoints, ordo.projector_instances,
    ordo.dead_letters, ordo.projection_status TO ordo_projector, ordo_sagas;
GRANT UPDATE (transaction_id, global_position, owner, last_event_at, updated_at)
    ON ordo.projection_checkpoints TO ordo_projector, ordo_sagas;
GRANT UPDATE (heartbeat_at) ON ordo.projector_instances TO ordo_projector, ordo_sagas;
GRANT UPDATE (status, attempts, error, resolved_at)
    ON ordo.dead_letters TO ordo_projector, ordo_sagas;
GRANT UPDATE (instance, breaker, lag_events, lag_seconds, halted_on, updated_at)
    ON ordo.projection_status TO ordo_projector, ordo_sagas;

-- Read models: the projector writes all five, the saga view included (table grants,
-- because `ordo rebuild` copies a table's grants to its replacement and column grants would
-- be lost); nobody deletes rows.
GRANT SELECT, INSERT, UPDATE ON read.orders, read.inventory, read.accounts, read.trace_events,
    read.sagas TO ordo_projector;

-- The saga runner's due index.
GRANT SELECT, INSERT, DELETE ON ordo.saga_schedule TO ordo_sagas;
GRANT UPDATE (due_at, leased_until) ON ordo.saga_schedule TO ordo_sagas;

-- The query service: the read schema, tables and views, and nothing else.
GRANT SELECT ON ALL TABLES IN SCHEMA read TO ordo_query;

-- Only the roles that run projections settle a dead letter (resolved, skipped, parked
-- again); the command role only asks for a retry or skip. Table owners and superusers,
-- who may change anything anyway, are not held back.
CREATE OR REPLACE FUNCTION ordo.dead_letter_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('retry_requested', 'skip_requested')
       AND OLD.status <> 'parked' THEN
        RAISE EXCEPTION 'dead letter % is %, not parked', OLD.id, OLD.status
            USING ERRCODE = '55000';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('resolved', 'skipped', 'parked')
       AND session_user NOT IN ('ordo_projector', 'ordo_sagas')
       AND NOT pg_has_role(session_user,
                           (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER') THEN
        RAISE EXCEPTION 'only the projector settles dead letters' USING ERRCODE = '42501';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
