-- The saga intake was one projection per mode ('sagas.orchestration', 'sagas.choreography');
-- it is now one, 'sagas.intake', whatever the mode, so that switching ORDO_SAGA_MODE
-- neither replays the whole history into the other mode's processes (a new projection
-- starts at the beginning of the store) nor strands the orders in flight.
--
-- It continues, per partition, from the earliest of the old checkpoints: events between
-- them may have reached only one mode's intake, and applying an event again is a no-op (the
-- intake derives its event ids from the source event), so starting early loses nothing.
INSERT INTO ordo.projection_checkpoints
    (projection, partition, transaction_id, global_position, last_event_at, owner, updated_at)
SELECT DISTINCT ON (partition)
       'sagas.intake', partition, transaction_id, global_position, last_event_at, owner, now()
  FROM ordo.projection_checkpoints
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography')
 ORDER BY partition, transaction_id, global_position;

DELETE FROM ordo.projection_checkpoints
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography');

-- Its dead letters are the new intake's to retry or skip, one per event: an event both old
-- intakes parked keeps the orchestration intake's letter.
DELETE FROM ordo.dead_letters c
 USING ordo.dead_letters o
 WHERE c.projection = 'sagas.choreography' AND o.projection = 'sagas.orchestration'
   AND c.transaction_id = o.transaction_id AND c.global_position = o.global_position;
UPDATE ordo.dead_letters SET projection = 'sagas.intake'
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography');
DELETE FROM ordo.projection_status
 WHERE projection IN ('sagas.orchestration', 'sagas.choreography');
