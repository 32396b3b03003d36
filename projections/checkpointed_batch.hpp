#pragma once

// The transactions of a projection slot: a batch of its partition's events after its
// checkpoint applied together with the new checkpoint, on the checkpoint row locked, so an
// event takes effect exactly once whatever crashes in between; poison isolation when a batch
// fails for good; and the carrying out of operators' dead-letter requests, each in one
// transaction with its resolution.

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "platform/core/log.hpp"
#include "projections/dead_letters.hpp"
#include "projections/slot.hpp"
#include "projections/slot_store.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::projections {

class LiveFeed;

// Used by the runtime's thread only; every call is one transaction of `store` and leaves the
// slot's checkpoint (Slot::at), idleness and halt as committed.
class CheckpointedBatch {
   public:
    CheckpointedBatch(SlotStore& store, const LiveFeed& live, platform::Logger log,
                      platform::metrics::Registry& metrics);
    ~CheckpointedBatch();
    CheckpointedBatch(const CheckpointedBatch&) = delete;
    CheckpointedBatch& operator=(const CheckpointedBatch&) = delete;

    // Applies the next batch of the slot's partition — from the live feed when it continues
    // the checkpoint without a gap, otherwise from the store below the horizon — or, when
    // there is none, moves its checkpoint up to the head of the log below the horizon so
    // that consistency tokens see an idle partition as caught up. Events applied.
    std::size_t apply_next(Slot& slot);

    // What apply_live says of a slot it left alone.
    static constexpr std::size_t kNotLive = static_cast<std::size_t>(-1);

    // The live runs of several slots in one transaction, at most `max_events` events in all
    // (each slot's run also within its own batch): each slot's checkpoint locked, its live
    // events applied and its checkpoint saved, all committed together, so N slots with live
    // events cost one commit, not N. Events applied per slot, in the order given, or kNotLive
    // for a slot it left alone: its live events do not continue its checkpoint (it must read
    // the store), or the budget was spent. Throws whatever any apply or the commit threw;
    // then nothing of it committed and each slot is the caller's to step alone, with its own
    // isolation.
    std::vector<std::size_t> apply_live(const std::vector<Slot*>& slots, std::size_t max_events);

    // After a batch failed for good: its events again, one at a time under a savepoint each,
    // to find the poison. It is parked, and the partition goes on past it (skip) or stops
    // before it (halt); the rest of the batch commits with the checkpoint. When several
    // events fail in a row, in this batch or the slot's earlier ones, the fault is the
    // sink's, not theirs: nothing more is parked and platform::Unavailable is thrown, so the
    // partition waits at its checkpoint. Events applied.
    std::size_t isolate(Slot& slot, DeadLetterPolicy policy);

    // Carries out the retry and skip requests on the slot's dead letters, in one transaction
    // with their resolutions: a retried letter takes effect exactly once. A halted
    // partition's checkpoint moves past its letter in the same transaction. True while the
    // partition is halted at a parked letter.
    bool settle(Slot& slot);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::projections
