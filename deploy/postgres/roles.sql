-- Cluster-wide roles for Ordo, run by the stack script as the superuser (psql variables:
-- migrator_password, command_password, relay_password, projector_password,
-- sagas_password, query_password). Idempotent. Migration 0009 grants each service role
-- what its service uses (docs/security.md has the table):
--   ordo_migrator   owns the databases and runs DDL (ordo migrate, ordo rebuild)
--   ordo_command    the command service and `ordo dead-letters`: appends through
--                   ordo.append_events, the command log, snapshots, dead-letter requests
--   ordo_relay      reads events, writes its checkpoint
--   ordo_projector  reads events, writes read models, checkpoints, dead letters
--   ordo_sagas      the saga runner: appends (in-process commands), its due index, its intake
--   ordo_query      SELECT on the read schema only, read-only sessions
-- ordo_writer and ordo_reader were the shared roles before; they exist, without LOGIN and
-- (after migration 0009) without grants, only because migrations 0001-0008 name them.
SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY['ordo_migrator', 'ordo_command', 'ordo_relay', 'ordo_projector',
                    'ordo_sagas', 'ordo_query', 'ordo_writer', 'ordo_reader']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE ordo_migrator  LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'migrator_password';
ALTER ROLE ordo_command   LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'command_password';
ALTER ROLE ordo_relay     LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'relay_password';
ALTER ROLE ordo_projector LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'projector_password';
ALTER ROLE ordo_sagas     LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'sagas_password';
ALTER ROLE ordo_query     LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'query_password';
ALTER ROLE ordo_query SET default_transaction_read_only = on;
ALTER ROLE ordo_writer    NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD NULL;
ALTER ROLE ordo_reader    NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD NULL;

SELECT 'CREATE DATABASE ordo OWNER ordo_migrator'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'ordo') \gexec
