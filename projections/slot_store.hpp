#pragma once

// The seam between the projection runtime and the database that holds its checkpoints, dead
// letters and read models: one transaction of a slot (SlotTxn), the store that runs them
// (SlotStore), and the leases that say which slots a runtime owns (SlotLeasing).
// PostgreSQL implements them (pg_slot_store.hpp, slot_leases.hpp); memory_slot_store.hpp
// holds in-memory ones that honour the same contract, for the runtime's unit tests.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "eventstore/event_store.hpp"
#include "eventstore/lag.hpp"
#include "platform/core/errors.hpp"
#include "projections/dead_letters.hpp"
#include "projections/projection.hpp"
#include "projections/slot.hpp"
#include "projections/sweep_plan.hpp"

namespace ordo::projections {

// What the admin view shows of one owned slot.
struct SlotStatus {
    std::string projection;
    int partition = 0;
    std::string instance;
    std::string breaker;
    eventstore::PartitionLag lag;
    std::optional<std::int64_t> halted_on;
    std::string breaker_transitions = "[]";  // SinkBreakers::transitions
};

// One transaction of the slot store. Read-model changes (the ReadModelTxn part), checkpoint
// moves, dead letters and status rows done through it commit together or not at all. Used
// by one thread.
class SlotTxn : public ReadModelTxn {
   public:
    // The checkpoint of (projection, partition), zero for a new one, locked until the
    // transaction ends: a batch commits only over the checkpoint it read, so a runtime that
    // lost the slot meanwhile cannot apply the batch a second time.
    virtual eventstore::Checkpoint lock_checkpoint(const std::string& projection,
                                                   int partition) = 0;
    // The shard whose commit order the checkpoint of (projection, partition) locked in this
    // transaction is in, when it names one (a sharded store); nullopt otherwise.
    virtual std::optional<int> checkpoint_shard(const std::string& projection,
                                                int partition) const {
        (void)projection;
        (void)partition;
        return std::nullopt;
    }
    // Moves the checkpoint (locked first) to `next`; `last_event_at` (RFC 3339, may be empty:
    // unchanged) is when the last event applied was recorded.
    virtual void save_checkpoint(const std::string& projection, int partition,
                                 eventstore::Checkpoint next, const std::string& last_event_at) = 0;

    // The same for many slots at once, for a transaction that steps several (the live runs
    // of a pass): on PostgreSQL one statement each, not one per slot. These defaults make
    // them of the single ones.
    using SlotKey = std::pair<std::string, int>;  // (projection, partition)
    // What lock_checkpoint gives each of `slots`, in the order given.
    virtual std::vector<eventstore::Checkpoint> lock_checkpoints(
        const std::vector<SlotKey>& slots) {
        std::vector<eventstore::Checkpoint> out;
        out.reserve(slots.size());
        for (const auto& [projection, partition] : slots) {
            out.push_back(lock_checkpoint(projection, partition));
        }
        return out;
    }
    // One save_checkpoint.
    struct CheckpointMove {
        std::string projection;
        int partition = 0;
        eventstore::Checkpoint next;
        std::string last_event_at;
    };
    // save_checkpoint for each of `moves`, whose checkpoints this transaction locked.
    virtual void save_checkpoints(const std::vector<CheckpointMove>& moves) {
        for (const auto& m : moves)
            save_checkpoint(m.projection, m.partition, m.next, m.last_event_at);
    }
    // Committed events of `partition` after `after`, below the horizon, in commit order, of
    // `categories` (all when empty), at most `limit`.
    virtual std::vector<eventstore::RecordedEvent> read_partition(
        eventstore::Checkpoint after, int partition, const std::vector<std::string>& categories,
        std::size_t limit) = 0;
    // The newest committed event below the horizon of the store that holds `partition` (its
    // shard, in a sharded store), if any. Read before read_partition, so that a partition
    // with nothing more may move up to it.
    virtual std::optional<eventstore::Checkpoint> head(int partition) = 0;
    // The sweep's survey (sweep_plan.hpp), a statement each whatever the slot count:
    // the checkpoint rows of `projections`, not locked;
    virtual std::vector<CheckpointRow> checkpoints(const std::vector<std::string>& projections) = 0;
    // what the store (`shard`, of a sharded store) has after `after` below its horizon,
    // looking at `limit` events at most;
    virtual Changes changes_after(ShardKey shard, Checkpoint after, std::size_t limit) = 0;
    // and the slots with a dead letter an operator asked to retry or skip.
    virtual std::set<std::pair<std::string, int>> requested_letters() = 0;
    // Moves the checkpoint of each of `slots` (projection, partition, where it stands) up to
    // `head` of `shard`, where its row still holds that checkpoint in that shard's order; the
    // slots it moved. A row changed meanwhile (a move's rebase, another owner) is left as it is.
    virtual std::set<std::pair<std::string, int>> advance(
        ShardKey shard, Checkpoint head, const std::vector<CheckpointRow>& slots) = 0;
    // Runs `work` under a savepoint: when it throws, what it did through the ReadModelTxn it
    // was given is undone and the exception propagates; the transaction goes on.
    virtual void savepoint(const std::function<void(ReadModelTxn&)>& work) = 0;

    // Dead letters (dead_letters.hpp states the rules).
    virtual std::int64_t park(const std::string& projection, int partition,
                              const eventstore::RecordedEvent& event, const std::string& error,
                              DeadLetterPolicy policy) = 0;
    virtual std::vector<OpenDeadLetter> lock_open_letters(const std::string& projection,
                                                          int partition) = 0;
    virtual void settle(const OpenDeadLetter& letter, DeadLetterStatus outcome,
                        const std::string& error) = 0;

    // The lag of `projection` on `partitions` (those with a checkpoint), counted up to
    // `max_count` events in all (eventstore/lag.hpp).
    virtual std::vector<eventstore::PartitionLag> lag(const std::string& projection,
                                                      const std::vector<std::string>& categories,
                                                      const std::vector<int>& partitions,
                                                      std::int64_t max_count) = 0;
    // Writes the status rows of `statuses`, one per slot, in one statement: the status is
    // written on the runtime's thread, between live batches, and a statement per slot (64
    // partitions, several projections) held the live events back for tens of milliseconds
    // every status interval.
    virtual void record_statuses(const std::vector<SlotStatus>& statuses) = 0;
};

// Runs slot transactions. Thread-safe.
class SlotStore {
   public:
    virtual ~SlotStore() = default;
    // Runs `work` in one transaction and commits, then runs the changes handed to on_commit.
    // An exception from `work` or the commit rolls everything back and propagates (but a
    // commit whose outcome is unknown, OutcomeUnknown, may have committed: its changes are
    // not run, and the runtime's retry finds the checkpoint moved).
    virtual void transact(const std::function<void(SlotTxn&)>& work) = 0;
    // Whether a failure of this store (or of a projection applying through it) may pass by
    // itself: a lost connection, a timeout, platform::Unavailable. Anything else is permanent.
    virtual platform::FailureKind classify(const std::exception_ptr& error) const = 0;
};

// The safety-net poll's deadline, kept across waits: events that cut every wait short must
// not put it off for ever. Pure; each SlotLeasing keeps one.
class PollDeadline {
   public:
    using TimePoint = std::chrono::steady_clock::time_point;
    // The deadline: `candidate`, unless an earlier one is set already.
    TimePoint at_most(TimePoint candidate) {
        at_ = std::min(at_, candidate);
        return at_;
    }
    // True once `now` has reached the deadline, which is then cleared.
    bool passed(TimePoint now) {
        if (now < at_) return false;
        at_ = TimePoint::max();
        return true;
    }

   private:
    TimePoint at_ = TimePoint::max();
};

// Which slots a runtime owns, shared with the other runtimes of its group. Used by the
// runtime's thread, but owned() and `woken` from any thread.
class SlotLeasing {
   public:
    virtual ~SlotLeasing() = default;
    virtual bool connected() const = 0;
    // A new session: every slot is unowned until the next balance.
    virtual void connect(std::vector<Slot>& slots) = 0;
    // Forgets a session that broke (the leases went with it).
    virtual void drop_if_broken() = 0;
    // Heartbeat, then take or give back slots until this runtime holds its fair share. A slot
    // it takes is marked neither idle nor settled (Slot::idle, Slot::settle_pending).
    virtual void balance(std::vector<Slot>& slots) = 0;
    virtual std::size_t owned() const = 0;
    // Waits until there may be something to apply — a live event (`woken`), an append
    // notification (`appended`) — or a stop, or `until`, or the poll interval. Clears
    // neither flag: the runtime does, when it looks. True when the poll interval passed:
    // time for the look at the store that catches whatever no notification announced.
    // Shorter while the last probe_horizon found events the horizon hid.
    virtual bool wait_for_events(const std::atomic<bool>& stop,
                                 std::chrono::steady_clock::time_point until) = 0;
    // Asks the store whether its horizon hides committed events, for the waits that follow.
    // Asked before each look at the store (the sweep's survey), never after: an event hidden
    // from the look either was hidden at the probe, and the wait is short, or committed after
    // it, and its notification wakes the wait. A probe after the look could find the horizon
    // passed in between, the event visible but unseen, and nothing would wake the runtime for
    // it until the poll. A store without a horizon has nothing to ask.
    virtual void probe_horizon() {}

    // A live event arrived (any thread): sets `woken` and wakes wait_for_events at once.
    void live_event() {
        woken = true;
        ring();
    }
    // An append notification came from elsewhere than the leasing's own session (a shard of
    // a sharded store; any thread): sets `appended` and wakes wait_for_events at once.
    void appended_elsewhere() {
        appended = true;
        ring();
    }

    // Live events arrived since the runtime last cleared this.
    std::atomic<bool> woken{false};
    // An append notification came since the runtime last cleared this: the store has events
    // the live path may not bring.
    std::atomic<bool> appended{false};

   protected:
    // Wakes a wait_for_events under way (any thread).
    virtual void ring() = 0;
};

}  // namespace ordo::projections
