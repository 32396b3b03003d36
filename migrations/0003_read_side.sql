-- The read side: partition hashes on events, relay and projection checkpoints, read models.

-- FNV-1a (32 bit) over the UTF-8 bytes of a stream id. Partition = stream_hash mod P. The
-- same function is in platform/core/partition.hpp; docs/architecture.md specifies it for other
-- languages.
CREATE FUNCTION ordo.stream_hash(p_stream text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE STRICT PARALLEL SAFE AS $$
DECLARE
    h bigint := 2166136261;
    b bytea := convert_to(p_stream, 'UTF8');
BEGIN
    FOR i IN 0 .. length(b) - 1 LOOP
        h := ((h # get_byte(b, i)) * 16777619) % 4294967296;
    END LOOP;
    RETURN h;
END
$$;

-- Backfilling the new column is the one rewrite of history Ordo allows itself: the
-- append-only trigger is off only inside this migration's transaction.
ALTER TABLE ordo.events ADD COLUMN stream_hash bigint;
ALTER TABLE ordo.events DISABLE TRIGGER events_append_only;
UPDATE ordo.events SET stream_hash = ordo.stream_hash(stream_id);
ALTER TABLE ordo.events ENABLE TRIGGER events_append_only;
ALTER TABLE ordo.events ALTER COLUMN stream_hash SET NOT NULL;

CREATE FUNCTION ordo.fill_stream_hash() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.stream_hash := ordo.stream_hash(NEW.stream_id);
    RETURN NEW;
END
$$;
CREATE TRIGGER events_stream_hash BEFORE INSERT ON ordo.events
    FOR EACH ROW EXECUTE FUNCTION ordo.fill_stream_hash();

-- The relay's position: everything at or below it is acknowledged by JetStream. `previous`
-- holds, per partition, the order key of the last event published there, so each message
-- can name its predecessor and consumers detect gaps.
CREATE TABLE ordo.relay_checkpoint (
    shard           integer PRIMARY KEY,
    transaction_id  xid8    NOT NULL DEFAULT '0',
    global_position bigint  NOT NULL DEFAULT 0,
    previous        jsonb   NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now()
);

-- One checkpoint per (projection, partition), written in the same transaction as the
-- read-model rows it covers.
CREATE TABLE ordo.projection_checkpoints (
    projection      text    NOT NULL,
    partition       integer NOT NULL,
    transaction_id  xid8    NOT NULL DEFAULT '0',
    global_position bigint  NOT NULL DEFAULT 0,
    last_event_at   timestamptz,
    owner           text,
    updated_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (projection, partition)
);

CREATE TABLE read.orders (
    order_id        text PRIMARY KEY,
    customer_id     text    NOT NULL,
    account_id      text    NOT NULL,
    status          text    NOT NULL,
    lines           jsonb   NOT NULL,
    total           bigint  NOT NULL,
    cancel_reason   text,
    version         bigint  NOT NULL,
    placed_position bigint  NOT NULL,  -- global position of OrderPlaced: the list order
    placed_at       timestamptz NOT NULL,
    updated_at      timestamptz NOT NULL
);
CREATE INDEX orders_customer_idx ON read.orders (customer_id, placed_position DESC, order_id);
CREATE INDEX orders_customer_status_idx
    ON read.orders (customer_id, status, placed_position DESC, order_id);

CREATE TABLE read.inventory (
    sku        text PRIMARY KEY,
    on_hand    bigint NOT NULL,
    reserved   bigint NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE read.accounts (
    account_id text PRIMARY KEY,
    balance    bigint NOT NULL,
    held       bigint NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE read.sagas (
    order_id   text PRIMARY KEY,
    saga_id    text NOT NULL,
    mode       text NOT NULL,
    status     text NOT NULL,
    steps      jsonb NOT NULL,
    version    bigint NOT NULL,
    updated_at timestamptz NOT NULL
);

CREATE TABLE read.trace_events (
    trace_id        text   NOT NULL,
    transaction_id  xid8   NOT NULL,
    global_position bigint NOT NULL,
    stream_id       text   NOT NULL,
    stream_version  bigint NOT NULL,
    event_type      text   NOT NULL,
    recorded_at     timestamptz NOT NULL,
    causation_id    text,
    correlation_id  text,
    PRIMARY KEY (trace_id, transaction_id, global_position)
);

-- What the query service may know of projection progress, for consistency tokens.
CREATE VIEW read.projection_progress AS
    SELECT projection, partition, transaction_id::text AS transaction_id, global_position,
           last_event_at, owner, updated_at
      FROM ordo.projection_checkpoints;

GRANT SELECT, INSERT, UPDATE ON ordo.relay_checkpoint, ordo.projection_checkpoints TO ordo_writer;
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA read TO ordo_writer;
GRANT SELECT ON ALL TABLES IN SCHEMA read TO ordo_reader;
