-- Operators' dead-letter requests (retry, skip) moved from the query service to the
-- Command API's admin routes, on the writer role. The query service is read-only again:
-- the reader role may no longer change a dead letter's status.
REVOKE UPDATE ON read.dead_letters FROM ordo_reader;
