#pragma once

// One (projection, partition) slot of a projection runtime: what the runtime's parts know
// of it between steps. Owned by the runtime's thread; no part keeps one past a call.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>

#include "eventstore/event_store.hpp"
#include "projections/projection.hpp"

namespace ordo::projections {

struct Slot {
    Projection* projection;
    int partition;
    std::size_t batch;  // events per transaction (batch_for)
    bool owned = false;
    bool idle = false;  // caught up at the last look
    int failures = 0;   // consecutive
    std::chrono::steady_clock::time_point retry_at{};
    std::optional<std::int64_t> halted_on;  // the dead letter a halted partition waits at
    // Events that failed for good in a row, across batches: with little traffic a batch
    // holds one event, so a sink that fails on every event shows only over several.
    std::size_t poison = 0;
    // Its open dead letters are looked at on its next visit: its first once owned (the owner
    // before may have parked some), after it parked one, after an operator asked for a retry
    // or skip (the sweep's survey finds those). Otherwise a step is one transaction, not two.
    bool settle_pending = true;
    eventstore::Checkpoint at{};  // as of its last save: tells which slots have live events waiting
    // The shard whose commit order `at` is in, when the checkpoint names one (a sharded
    // store's): live events of other shards are not this slot's to continue from.
    std::optional<int> shard;
};

}  // namespace ordo::projections
