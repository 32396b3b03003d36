-- Requests already handled: HTTP Idempotency-Key values ('http:<key>') and the command ids
-- of internal commands ('cmd:<id>'). A row is written in the same transaction as the
-- events it caused, so a replay returns exactly the first outcome and appends nothing.
CREATE TABLE ordo.command_log (
    key         text PRIMARY KEY,
    fingerprint text NOT NULL,          -- SHA-256 of what was asked
    status      integer NOT NULL,       -- the outcome, as an HTTP status
    response    jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX command_log_created_idx ON ordo.command_log (created_at);

GRANT SELECT, INSERT, UPDATE, DELETE ON ordo.command_log TO ordo_writer;
