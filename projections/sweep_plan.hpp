#pragma once

// Which owned slots a sweep must step, and which it may only move up to the head, decided
// from one survey of the store instead of a transaction per slot. Pure, so the decisions
// are unit tested; the runtime reads the survey and carries out the plan.
//
// Why: a sweep used to step every owned slot, each step a transaction that found nothing
// on an idle partition, so an idle projector's work grew with the partition count (at 16
// partitions and eight projections, ~260 transactions a second with nothing to do). Now a
// sweep costs a few statements whatever the count, and steps only the slots that may have
// something to apply or settle.

#include <chrono>
#include <cstddef>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "eventstore/event_store.hpp"
#include "projections/slot.hpp"

namespace ordo::projections {

using eventstore::Checkpoint;

// The shard whose commit order a checkpoint is in; nullopt: a store that is not sharded.
using ShardKey = std::optional<int>;

// A slot's checkpoint row as the store holds it now.
struct CheckpointRow {
    std::string projection;
    int partition = 0;
    Checkpoint at;
    ShardKey shard;
};

// What one database holding events (the store, or one shard) has after a checkpoint below
// its horizon (eventstore::EventStore::changes_after).
using Changes = eventstore::ChangedPartitions;

// A slot the sweep may pass over, given what it knows: owned, caught up at its last look,
// its own last save what the store still holds (no move, rebuild or other owner changed the
// row since), and no dead letter to look at.
bool may_pass_over(const Slot& slot, const CheckpointRow* row);

// For each shard, the checkpoint to ask about: the lowest of the slots that may be passed
// over. What comes after it tells which of them have anything to do.
std::map<ShardKey, Checkpoint> survey_points(const std::vector<Slot>& slots,
                                             const std::vector<CheckpointRow>& rows);

struct SweepPlan {
    // Slots to step, by index into the runtime's slots, in order.
    std::vector<std::size_t> visit;
    // Slots with nothing to apply whose checkpoints move up to their shard's head (so that
    // consistency tokens see the partition as caught up), in one statement, each only if its
    // row still holds what the slot last saved.
    std::vector<std::size_t> advance;
    // The head each advanced slot moves to, by shard.
    std::map<ShardKey, Checkpoint> heads;
};

// The plan for the owned slots whose retry time has come by `now`, from their rows and the
// changes after each shard's survey point. A slot that may not be passed over is stepped
// (the caller marks those with an operator's request to settle first: Slot::settle_pending).
// A halted slot (waiting at a dead letter) is never advanced, and is stepped only then. The
// slots of `breakers_not_closed` (projections whose breaker is open or probing) are stepped,
// never advanced: their breaker decides whether they are touched.
SweepPlan plan_sweep(const std::vector<Slot>& slots, const std::vector<CheckpointRow>& rows,
                     const std::map<ShardKey, Changes>& changes,
                     std::chrono::steady_clock::time_point now,
                     const std::set<std::string>& breakers_not_closed = {});

}  // namespace ordo::projections
