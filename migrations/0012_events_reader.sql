-- The query service's events API (GET /v1/events, /v1/events/stream) reads history: the
-- query role may read the events table, and nothing else of the event store (not streams,
-- snapshots or the command log), and still writes nothing.
GRANT SELECT ON ordo.events TO ordo_query;
