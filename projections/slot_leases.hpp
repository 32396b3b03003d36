#pragma once

// Which (projection, partition) slots this runtime owns. Each slot is owned by one process at
// a time through a Postgres advisory lock (slot_lock_key, partition) held on the runtime's
// session; processes of a group share the slots fairly, counting each other through
// heartbeats in ordo.projector_instances, and a survivor takes over the slots of one that
// died (its session ended, so its locks went with it). The same session listens for append
// notifications: one connection per runtime, and a lost session shows at once.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "projections/slot.hpp"
#include "projections/slot_store.hpp"

namespace ordo::projections {

// The first key of the advisory lock (key, partition) that owns a projection's slot (see
// platform/pg/advisory_locks.hpp).
int slot_lock_key(const std::string& projection);

// ---- The balancing arithmetic, pure.

// The slots each of `live_instances` (this one included, at least one) should hold: the
// slots divided evenly, rounded up, so that together they hold them all.
std::size_t fair_share(std::size_t slots, std::size_t live_instances);

// Where an instance starts looking at the slots: differs per instance, so instances do not
// all contend for the same slots first.
std::size_t search_start(const std::string& instance, std::size_t slots);

struct BalanceMoves {
    std::vector<std::size_t> taken;     // slot indexes, in the order taken
    std::vector<std::size_t> released;  // slot indexes, in the order given back
};

// The moves that bring the holding `owned` towards `fair`: below it, the free slots are
// tried from `start` on, `try_take` asked for each (it may refuse: another instance holds
// it), until the share is held; above it, owned slots are given back going backwards from
// just before `start`, so the ones taken first are kept longest.
BalanceMoves rebalance(const std::vector<bool>& owned, std::size_t fair, std::size_t start,
                       const std::function<bool(std::size_t)>& try_take);

// ---- The leases.

struct SlotLeaseOptions {
    std::string database_url;
    std::string instance;  // unique per process
    std::string group;     // runtimes of one group share their slots
    // An instance counts as alive while its heartbeat is this recent.
    std::chrono::seconds instance_ttl{10};
    std::chrono::milliseconds poll_interval{500};
    // Over a sharded store, whether a shard's horizon hides committed events: then the wait
    // is short. It is asked instead of this database (the read database, which holds none of
    // the store's events). Null: the events are here.
    std::function<bool()> hidden_elsewhere;
};

// The leases on PostgreSQL. Used by the runtime's thread only.
class SlotLeases final : public SlotLeasing {
   public:
    explicit SlotLeases(SlotLeaseOptions options);
    ~SlotLeases() override;
    SlotLeases(const SlotLeases&) = delete;
    SlotLeases& operator=(const SlotLeases&) = delete;

    bool connected() const override;
    void connect(std::vector<Slot>& slots) override;
    void drop_if_broken() override;
    void balance(std::vector<Slot>& slots) override;
    std::size_t owned() const override;
    // Listens on the session and on an eventfd that live_event() writes to, in slices of
    // 10 ms (to notice a stop); the poll interval is shorter while committed events are
    // hidden by the horizon (as the last probe_horizon found).
    bool wait_for_events(const std::atomic<bool>& stop,
                         std::chrono::steady_clock::time_point until) override;
    void probe_horizon() override;

   protected:
    void ring() override;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::projections
