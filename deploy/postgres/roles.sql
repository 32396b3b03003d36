-- Cluster-wide roles for Ordo, run by the stack script as the superuser (psql variables:
-- migrator_password, writer_password, reader_password). Idempotent.
--   ordo_migrator  owns the databases and runs DDL (ordo migrate)
--   ordo_writer    command side, relay, projectors, sagas: INSERT/SELECT on events, no DDL
--   ordo_reader    query service: SELECT on the read schema only, read-only sessions
SELECT format('CREATE ROLE %I', r)
  FROM unnest(ARRAY['ordo_migrator', 'ordo_writer', 'ordo_reader']) AS r
 WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE ordo_migrator LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'migrator_password';
ALTER ROLE ordo_writer   LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'writer_password';
ALTER ROLE ordo_reader   LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT PASSWORD :'reader_password';
ALTER ROLE ordo_reader SET default_transaction_read_only = on;

SELECT 'CREATE DATABASE ordo OWNER ordo_migrator'
 WHERE NOT EXISTS (SELECT 1 FROM pg_database WHERE datname = 'ordo') \gexec
