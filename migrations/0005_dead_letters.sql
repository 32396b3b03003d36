-- Resilient projections: events a projection could not apply, the state of each
-- projection's circuit breaker, and how far each partition lags.

-- A poison event: its projection failed on it for a reason no retry fixes by itself. The
-- row keeps the whole event, so a retry needs nothing else. `policy` is what the partition
-- did: skip (went on past it) or halt (waits at it until the dead letter is retried or
-- skipped). Operators move a parked letter to retry_requested or skip_requested; the
-- projector performs the request and sets resolved (applied) or skipped.
CREATE TABLE ordo.dead_letters (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    projection      text    NOT NULL,
    partition       integer NOT NULL,
    transaction_id  xid8    NOT NULL,
    global_position bigint  NOT NULL,
    stream_id       text    NOT NULL,
    stream_version  bigint  NOT NULL,
    event_id        uuid    NOT NULL,
    event_type      text    NOT NULL,
    schema_version  integer NOT NULL,
    category        text    NOT NULL,
    payload         jsonb   NOT NULL,
    metadata        jsonb   NOT NULL,
    recorded_at     timestamptz NOT NULL,
    error           text    NOT NULL,
    attempts        integer NOT NULL DEFAULT 1,
    policy          text    NOT NULL CHECK (policy IN ('skip', 'halt')),
    status          text    NOT NULL DEFAULT 'parked'
        CHECK (status IN ('parked', 'retry_requested', 'skip_requested', 'resolved', 'skipped')),
    requested_at    timestamptz,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    UNIQUE (projection, transaction_id, global_position)
);
-- The projector looks up the open letters of the slots it owns at every step.
CREATE INDEX dead_letters_open_idx ON ordo.dead_letters (projection, partition, id)
    WHERE status IN ('parked', 'retry_requested', 'skip_requested');

-- What the projector knows of each (projection, partition) it owns: the breaker state it
-- sees, and the lag it measured (events pending below the horizon, and how long the oldest
-- of them has waited). Written every few seconds; the admin view reads it.
CREATE TABLE ordo.projection_status (
    projection  text    NOT NULL,
    partition   integer NOT NULL,
    instance    text    NOT NULL,
    breaker     text    NOT NULL DEFAULT 'closed' CHECK (breaker IN ('closed', 'open', 'half_open')),
    lag_events  bigint  NOT NULL DEFAULT 0,
    lag_seconds float8  NOT NULL DEFAULT 0,
    halted_on   bigint,  -- the dead letter a halted partition waits at
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

GRANT SELECT, INSERT, UPDATE ON ordo.dead_letters TO ordo_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ordo.projection_status TO ordo_writer;

-- The query service (reader role) sees dead letters through this view and may only move
-- their status: a simple view is updatable, and only these columns are granted.
CREATE VIEW read.dead_letters AS
    SELECT id, projection, partition, transaction_id::text AS transaction_id, global_position,
           stream_id, stream_version, event_id::text AS event_id, event_type, payload, metadata,
           recorded_at, error, attempts, policy, status, requested_at, created_at, updated_at,
           resolved_at
      FROM ordo.dead_letters;
GRANT SELECT ON read.dead_letters TO ordo_reader, ordo_writer;
GRANT UPDATE (status, requested_at) ON read.dead_letters TO ordo_reader;

-- A request may only be made on a parked letter, and to retry or skip: the reader role can
-- ask, never decide the outcome.
CREATE FUNCTION ordo.dead_letter_guard() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('retry_requested', 'skip_requested')
       AND OLD.status <> 'parked' THEN
        RAISE EXCEPTION 'dead letter % is %, not parked', OLD.id, OLD.status
            USING ERRCODE = '55000';
    END IF;
    IF NEW.status IS DISTINCT FROM OLD.status
       AND NEW.status IN ('resolved', 'skipped', 'parked')
       AND session_user = 'ordo_reader' THEN
        RAISE EXCEPTION 'only the projector settles dead letters' USING ERRCODE = '42501';
    END IF;
    NEW.updated_at := now();
    RETURN NEW;
END
$$;
CREATE TRIGGER dead_letters_guard BEFORE UPDATE ON ordo.dead_letters
    FOR EACH ROW EXECUTE FUNCTION ordo.dead_letter_guard();

CREATE VIEW read.projection_status AS
    SELECT projection, partition, instance, breaker, lag_events, lag_seconds, halted_on,
           updated_at,
           (SELECT count(*) FROM ordo.dead_letters d
             WHERE d.projection = s.projection AND d.partition = s.partition
               AND d.status IN ('parked', 'retry_requested', 'skip_requested')) AS dead_letters
      FROM ordo.projection_status s;
GRANT SELECT ON read.projection_status TO ordo_reader, ordo_writer;
