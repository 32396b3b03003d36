-- A count of the times the intake marked a process due. A runner reads it when it claims the
-- process and files the next wake-up only if it is unchanged: a mark that came while the
-- runner held the process (new events it may not have seen) makes the process due at once.
-- The row itself is the fence, so a runner files its wake-up in one statement instead of
-- reading the process's stream version in a transaction of its own.
ALTER TABLE ordo.saga_schedule ADD COLUMN marks bigint NOT NULL DEFAULT 0;

GRANT UPDATE (marks) ON ordo.saga_schedule TO ordo_sagas;
