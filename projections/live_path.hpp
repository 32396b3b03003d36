#pragma once

// The projection runtime's live path: JetStream events buffered within a bound and applied only
// while they continue the checkpoint without a gap.

#include <cstddef>
#include <deque>
#include <optional>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "eventstore/event_store.hpp"
#include "eventstore/wire.hpp"

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
// relay that republished after losing its checkpoint), so it is passed over. So is an event
// published by another shard than `shard`, the one `at` is in (when the checkpoint names
// one): its keys are in another commit order (the partition moved). The run stops at a gap
// (a predecessor above the tip: the store has to fill it) and at an event that is not of
// this partition (a relay with another partition count: the store decides).
LiveRun continuing_run(const std::deque<LiveEvent>& buffered, Checkpoint at, int partition,
                       int partitions, std::size_t batch, std::optional<int> shard = {});

// Roughly the heap an event takes in a buffer: its strings and its decoded payload (JSON
// nodes, keys, strings), not just its size on the wire. A 100-line order is about 30 KiB.
std::size_t footprint(const LiveEvent& event);
std::size_t footprint(const nlohmann::json& value);

// The live events of one partition waiting to be applied, bounded in bytes (footprint()).
// An event that does not fit is refused, never an older one evicted: the buffer keeps the
// events the partition needs next, and a refused event leaves a gap in the chain, so the
// partition reads it from the store (continuing_run stops at gaps) and nothing is lost or
// applied out of order. Events every slot of the partition has applied are trimmed.
// Not thread-safe: its owner locks.
class LiveBuffer {
   public:
    explicit LiveBuffer(std::size_t max_bytes) : max_bytes_{max_bytes} {}

    // False when the event would take the buffer past its bound (it is dropped).
    bool push(LiveEvent event);
    // Forgets the events at or below `applied`, and, when `shard` is named, every event of
    // another shard.
    void trim(Checkpoint applied, std::optional<int> shard = {});
    void clear();

    LiveRun run(Checkpoint at, int partition, int partitions, std::size_t batch,
                std::optional<int> shard = {}) const {
        return continuing_run(events_, at, partition, partitions, batch, shard);
    }
    // Some buffered event lies beyond `at`.
    bool has_after(Checkpoint at) const { return !events_.empty() && events_.back().key > at; }

    std::size_t bytes() const { return bytes_; }
    std::size_t size() const { return events_.size(); }
    std::size_t max_bytes() const { return max_bytes_; }

   private:
    std::size_t max_bytes_;
    std::size_t bytes_ = 0;
    std::deque<LiveEvent> events_;
    std::deque<std::size_t> sizes_;  // footprint of each event, in step with events_
};

}  // namespace ordo::projections
