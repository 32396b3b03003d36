#pragma once

// Group commit: concurrent units of work share one transaction, so a burst of commands costs
// a few commits instead of one each. The coordination only; what a batch is (a PostgreSQL
// transaction with a savepoint per unit) is the store's business.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <vector>

namespace ordo::eventstore {

class Session;
struct AppendRequest;

// Leader and followers, with no timer: a unit that arrives while fewer than
// `max_in_flight` batches run becomes the leader of a batch at once (a lone unit waits for
// nothing), and takes with it every unit queued before it, up to `max_batch`. Units that
// arrive while every batch slot is busy queue; when a batch ends, the oldest queued unit
// leads the next one. So batches grow with the load and shrink to one unit when it ebbs.
//
// Invariants:
// - A unit runs at most once per batch, in arrival order within its batch, on the leader's
//   thread; its caller returns only after the batch's outcome is known.
// - A unit fails alone: its own exception is its own, the others' outcomes stand. A batch
//   that fails as a whole (the commit, the connection) fails every unit that had not
//   failed alone, with the batch's exception: nothing of the batch was committed.
// - A unit the batch asks to retry (it waited too long for a lock, or lost a deadlock) is
//   queued again once, at the front, and runs in a batch of its own: a lock wait then
//   holds up no one else. A second ask is its error.
// - A unit still queued when its deadline passes is taken out and throws
//   platform::Overloaded: it never ran. Waiting is bounded by `max_queued` too.
// Thread-safe.
class GroupCommit {
   public:
    using Deadline = std::chrono::steady_clock::time_point;
    using Work = std::function<void(Session&)>;

    struct Options {
        std::size_t max_batch = 64;
        std::size_t max_in_flight = 4;
        std::size_t max_queued = 8192;
    };

    // One caller's unit as a batch sees it. The batch runner sets `error` for a unit that
    // failed alone, or `retry` for one that should run again in a later batch.
    struct Unit {
        const Work* work = nullptr;
        Deadline deadline;
        // Set when the unit is this one append (EventStore::append): its batch runs the
        // appends of all its units as one statement, and calls no unit's `work`.
        AppendRequest* append = nullptr;
        std::exception_ptr error;
        bool retry = false;

       private:
        friend class GroupCommit;
        bool taken = false;    // in a running batch
        bool retried = false;  // queued again once already: runs alone
        bool done = false;
    };

    // Runs every unit of a batch. Throws when the batch failed as a whole: then no unit's
    // effect was committed. `by` is the latest deadline of the batch's units: how long the
    // runner may wait for what it needs (a connection).
    using Runner = std::function<void(std::vector<Unit*>& batch, Deadline by)>;

    GroupCommit(Options options, Runner runner);

    // Runs `work` (for an append, the batch runs its statement instead) in some batch;
    // returns when that batch committed, or throws the unit's own error, the batch's error,
    // or platform::Overloaded.
    void run(Deadline deadline, const Work& work, AppendRequest* append = nullptr);

    struct Stats {
        std::uint64_t batches = 0;
        std::uint64_t units = 0;
        std::size_t largest = 0;
    };
    Stats stats() const;
    std::size_t queued() const;
    const Options& options() const { return options_; }

   private:
    void lead(std::unique_lock<std::mutex>& lock);

    Options options_;
    Runner runner_;
    mutable std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<Unit*> queue_;
    std::size_t in_flight_ = 0;
    Stats stats_;
};

}  // namespace ordo::eventstore
