#pragma once

#include <cstddef>
#include <deque>
#include <vector>

#include "eventstore/event_message.hpp"
#include "eventstore/event_store.hpp"

namespace ordo::projections {

using eventstore::Checkpoint;

// An event that came over JetStream, with its place in its partition's chain: the relay
// sends each event with the key of the partition's event before it.
using LiveEvent = eventstore::PublishedEvent;

struct LiveRun {
    std::vector<eventstore::RecordedEvent> events;
    // Nothing in the buffer is left to apply after this run.
    bool rest_empty = false;
};

// The buffered events of `partition` that continue `at` without a gap, up to `batch`.
// An event at or below the run's tip is applied already or a copy of one in the run (a
// relay that republished after losing its checkpoint), so it is passed over. The run stops
// at a gap (a predecessor above the tip: the store has to fill it) and at an event that is
// not of this partition (a relay with another partition count: the store decides).
LiveRun continuing_run(const std::deque<LiveEvent>& buffered, Checkpoint at, int partition,
                       int partitions, std::size_t batch);

}  // namespace ordo::projections
