#pragma once

// The projection runtime: its options, the Runtime, and how its batches are sized.

#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eventstore/shard_map.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/circuit_breaker.hpp"
#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "platform/nats/nats.hpp"
#include "projections/dead_letters.hpp"
#include "projections/projection.hpp"
#include "projections/slot_leases.hpp"  // slot_lock_key, which an offline rebuild takes too
#include "projections/slot_store.hpp"
#include "projections/upcasting.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::platform {
class BreakerStore;
}

namespace ordo::projections {

struct RuntimeOptions {
    std::string database_url;
    int partitions = eventstore::kDefaultPartitions;
    std::size_t batch = 500;
    std::chrono::milliseconds poll_interval{500};
    // With a live path, a look at every owned partition in the store (a sweep: what the live
    // path did not bring, operators' dead-letter requests, and idle partitions' checkpoints
    // moved up to the head) starts at most this often, however many append notifications
    // come; live events never wait for one. Without a live path the store is all there is,
    // and a sweep starts at once. An operator's request waits for the next sweep: at most
    // poll_interval.
    std::chrono::milliseconds sweep_interval{100};
    // An instance counts as alive while its heartbeat is this recent.
    std::chrono::seconds instance_ttl{10};
    std::string instance;  // unique per process
    // Runtimes of one group run the same projections and share their slots.
    std::string group = "projector";
    // Live path: when nats.url is set, events also arrive from JetStream (an ordered consumer
    // per partition) and are applied from there while they follow the checkpoint without a
    // gap; anything else is read from the store. JetStream is a cache, the store the truth.
    platform::nats::ClientSettings nats;
    std::string stream = eventstore::kDefaultJetStream;
    std::string subject_prefix = eventstore::kDefaultSubjectPrefix;
    // Bound on the live events held in memory, split evenly between the partitions. Past
    // it a partition takes new events from the store instead (see LiveBuffer): the bound
    // costs catch-up reads, never events. Events are trimmed once every projection of their
    // partition has applied them.
    std::size_t live_buffer_bytes = std::size_t{16} << 20;
    // Bounds each statement of a batch: a read model locked or stalled past it counts as a
    // sink failure.
    std::chrono::milliseconds statement_timeout{5000};
    // One breaker per projection around its sink. Shared with the fleet through
    // `breaker_store` when given (a NATS KV bucket); otherwise each process decides alone.
    platform::BreakerOptions breaker;
    platform::BreakerStore* breaker_store = nullptr;
    std::map<std::string, DeadLetterPolicy> dead_letter_policies;  // by projection
    DeadLetterPolicy default_dead_letter_policy = DeadLetterPolicy::skip;
    // How often the lag and breaker state of owned slots go to ordo.projection_status.
    std::chrono::milliseconds status_interval{2000};
    const platform::Clock* clock = nullptr;  // the system clock when null
    // Every projection reads events upcast by these to their current shape (see
    // UpcastingProjection); null hands them over as stored. Outlives the runtime.
    const eventstore::Upcasters* upcasters = nullptr;
    // A sharded store's map: each partition's events are read from its shard, and
    // database_url is the read database (checkpoints, leases, dead letters, read models).
    // Unset: the events are in database_url too.
    std::optional<eventstore::ShardMap> shards;
};

// Runs projections over the event store, partition by partition, composed of parts that
// each do one job:
// - SlotLeases (slot_leases.hpp): which (projection, partition) slots this process owns,
//   through advisory locks on its session, shared fairly with the group over heartbeats;
// - LiveFeed (live_feed.hpp): the JetStream consumer per partition and its bounded buffer;
// - CheckpointedBatch (checkpointed_batch.hpp): a batch applied with its checkpoint in one
//   transaction — from the live buffer when it continues the checkpoint without a gap,
//   otherwise from the store below the xid horizon — so an event takes effect exactly once;
//   poison isolation; the carrying out of dead-letter requests;
// - dead letters (dead_letters.hpp): the one owner of their statuses and transitions;
// - SinkBreakers (sink_breakers.hpp): one breaker per projection, shared with the fleet;
// - ProjectionStatus (projection_status.hpp): lag and breaker state for the admin view.
//
// Each projection's sink sits behind its breaker: transient failures (connections refused,
// timeouts) feed it, and while it is open the projection's partitions stay at their
// checkpoints, acknowledging and skipping nothing, until a probe succeeds. A permanent
// failure is an event's own: it is found, parked as a dead letter, and the partition skips
// it or halts at it by policy.
//
// The slots' transactions and leases go through the seam of slot_store.hpp: on PostgreSQL
// (PgSlotStore, SlotLeases at options.database_url) by default, or on the given ones.
class Runtime {
   public:
    Runtime(RuntimeOptions options, std::vector<std::unique_ptr<Projection>> projections,
            platform::Logger log, platform::metrics::Registry& metrics);
    // On `store` and `leases`, which must outlive the runtime (options.database_url unused).
    Runtime(RuntimeOptions options, std::vector<std::unique_ptr<Projection>> projections,
            platform::Logger log, platform::metrics::Registry& metrics, SlotStore& store,
            SlotLeasing& leases);
    ~Runtime();

    // Calls `hook` on the runtime's thread after each batch that applied events has
    // committed (poison isolation and dead-letter retries do not call it): for whoever must
    // hear of what the projections did, such as the waiters for the appends of a projection
    // that appends to the store. Call before run().
    void on_batch_committed(std::function<void()> hook);

    // Runs until `stop` is set. Survives Postgres restarts: it reconnects and carries on.
    void run(const std::atomic<bool>& stop);

    // Slots this instance owns now; for tests and the admin view.
    std::size_t owned_slots() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// How many events one transaction of `projection` applies: `batch`, or fewer when its
// applies may take long beyond the database (Projection::worst_apply, a webhook's calls), so
// that a whole batch stays within half of the transaction `bound`; at least one. Otherwise a
// batch that calls out slowly would hit the bound, roll back and be sent again, for ever.
std::size_t batch_for(const Projection& projection, std::size_t batch,
                      std::chrono::milliseconds bound);

}  // namespace ordo::projections
