-- The saga intake was one projection per mode ('sagas.orchestration', 'sagas.choreography');
-- it is now one, 'sagas.intake', whatever the mode, so that switching ORDO_SAGA_MODE
-- neither replays the whole history into the other mode's processes (a new projection
-- starts at the beginning of the store) nor strands the orders in flight. It continues,
-- per partition, from the furthest of the old checkpoints.
INSERT INTO ordo.projection_checkpoints
    (projection, partition, transaction_id, global_position, last_event_at, owner, updated_at)
SELECT DISTINCT ON (partition)
       'sagas.intake', partition, transaction_id, global_position, last_event_at, owner, now()
  FROM ordo.projection_checkpoints
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography')
 ORDER BY partition, transaction_id DESC, global_position DESC;

DELETE FROM ordo.projection_checkpoints
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography');

-- Its dead letters are the new intake's to retry or skip; the old status rows go.
UPDATE ordo.dead_letters SET projection = 'sagas.intake'
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography');
DELETE FROM ordo.projection_status
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography');
