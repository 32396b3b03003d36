#pragma once

// The projection runtime's seam in memory, for its unit tests: a slot store over an event
// reader (an eventstore::MemoryStore) and leases shared by the runtimes of one test. Same
// contract as PostgreSQL's (slot_store.hpp), no database needed; not for production (every
// transaction copies the store's state to roll back to).

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "eventstore/store.hpp"
#include "projections/slot_store.hpp"

namespace ordo::projections {

// A dead letter as the memory store keeps it.
struct MemoryDeadLetter {
    std::int64_t id = 0;
    std::string projection;
    int partition = 0;
    eventstore::RecordedEvent event;
    std::string error;
    int attempts = 1;
    DeadLetterPolicy policy = DeadLetterPolicy::skip;
    DeadLetterStatus status = DeadLetterStatus::parked;
};

// Transactions run one at a time (one of the orders PostgreSQL could choose); an exception
// leaves nothing of one behind, and on_commit changes run after it committed, outside the
// store's lock (so two threads' changes may interleave). Thread-safe. Never call it from
// inside a MemoryStore session: the locks would be taken in the other order.
class MemorySlotStore final : public SlotStore {
   public:
    // Events come from `events`, which must outlive the store, split into `partitions` by
    // platform::partition_of.
    MemorySlotStore(eventstore::EventReader& events, int partitions);
    ~MemorySlotStore() override;

    void transact(const std::function<void(SlotTxn&)>& work) override;
    // platform::Unavailable is transient, anything else permanent.
    platform::FailureKind classify(const std::exception_ptr& error) const override;

    // The next `count` transactions that change a read model (through on_commit) fail at
    // their commit with platform::Unavailable, having done nothing: a database that went
    // away mid-batch.
    void fail_commits(int count);

    // For tests' "then".
    eventstore::Checkpoint checkpoint(const std::string& projection, int partition);
    std::vector<MemoryDeadLetter> dead_letters();
    std::vector<SlotStatus> statuses();
    // How many times a transaction looked for a slot's open dead letters.
    std::size_t letter_looks();
    // How many transactions have run, committed or not.
    std::size_t transactions();
    // An operator's request on letter `id` by the rules of after_request; the status it
    // leaves, or nullopt when refused or not found.
    std::optional<DeadLetterStatus> request(std::int64_t id, DeadLetterRequest what);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Leases in memory: the runtimes given the same table share its slots fairly, as the
// advisory locks and heartbeats do on PostgreSQL. A runtime counts as alive from connect()
// until its leases are destroyed or disconnect() is called (a session that died).
class MemoryLeaseTable {
   public:
    // Wakes every waiting runtime: something was appended.
    void notify();

   private:
    friend class MemoryLeases;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::set<std::string> alive_;
    std::map<std::pair<std::string, int>, std::string> holders_;  // slot -> instance
    std::uint64_t notifications_ = 0;
};

class MemoryLeases final : public SlotLeasing {
   public:
    // `poll_interval` bounds each wait_for_events. `hidden`, when given, is the store's
    // horizon as probe_horizon asks it: true while committed events are hidden from reads;
    // the waits after such a probe last 5 ms (HorizonWait's first wait over PostgreSQL).
    MemoryLeases(MemoryLeaseTable& table, std::string instance,
                 std::chrono::milliseconds poll_interval, std::function<bool()> hidden = {});
    ~MemoryLeases() override;

    bool connected() const override;
    void connect(std::vector<Slot>& slots) override;
    void drop_if_broken() override;
    void balance(std::vector<Slot>& slots) override;
    std::size_t owned() const override;
    bool wait_for_events(const std::atomic<bool>& stop,
                         std::chrono::steady_clock::time_point until) override;
    void probe_horizon() override;
    // How many waits began: a runtime that spins instead of waiting shows here.
    std::size_t waits() const { return waits_; }

    // The session dies for good: its slots are free for the others, the runtime finds out at
    // its next step (connected() is false) and cannot connect again. Any thread.
    void disconnect();

   protected:
    void ring() override;

   private:
    MemoryLeaseTable& table_;
    std::string instance_;
    std::chrono::milliseconds poll_interval_;
    std::function<bool()> hidden_;
    bool hiding_ = false;  // at the last probe_horizon
    std::atomic<std::size_t> waits_{0};
    std::atomic<bool> connected_{false};
    std::atomic<bool> ended_{false};
    std::atomic<std::size_t> owned_{0};
    std::uint64_t seen_notifications_ = 0;
    PollDeadline poll_;
};

}  // namespace ordo::projections
