#pragma once

#include <atomic>
#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "platform/circuit_breaker.hpp"
#include "platform/clock.hpp"
#include "platform/log.hpp"
#include "platform/nats.hpp"
#include "projections/projection.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::platform {
class BreakerStore;
}

namespace ordo::eventstore {
class AppendNotifier;
}

namespace ordo::projections {

// What a partition does after parking a poison event in ordo.dead_letters: go on past it,
// or wait at it until an operator retries or skips it.
enum class DeadLetterPolicy { skip, halt };

// "orders=halt,inventory=skip" (blanks allowed around the parts); throws
// platform::InvalidInput naming the bad part.
std::map<std::string, DeadLetterPolicy> parse_dead_letter_policies(const std::string& text);

struct RuntimeOptions {
    std::string database_url;
    int partitions = 16;
    std::size_t batch = 500;
    std::chrono::milliseconds poll_interval{500};
    // An instance counts as alive while its heartbeat is this recent.
    std::chrono::seconds instance_ttl{10};
    std::string instance;  // unique per process
    // Runtimes of one group run the same projections and share their slots.
    std::string group = "projector";
    // Live path: when nats.url is set, events also arrive from JetStream (an ordered consumer
    // per partition) and are applied from there while they follow the checkpoint without a
    // gap; anything else is read from the store. JetStream is a cache, the store the truth.
    platform::nats::ClientSettings nats;
    std::string stream = "ORDO_EVENTS";
    std::string subject_prefix = "ordo.events";
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
    // Signalled after a batch commits, for projections that append to the store (the saga
    // intake), so that whoever waits for those appends hears of them.
    eventstore::AppendNotifier* notifier = nullptr;
};

// Runs projections over the event store, partition by partition.
//
// Each (projection, partition) slot is owned by one process at a time through a Postgres
// advisory lock held on the runtime's session; processes share the slots fairly, counting
// each other through heartbeats, and a survivor takes over the slots of one that died.
// An owned slot takes its partition's events after its checkpoint — from the live JetStream
// buffer when they continue the checkpoint without a gap (each message names its
// partition predecessor), otherwise from the store below the xid horizon — and applies a
// batch and the new checkpoint in one transaction, on the checkpoint row locked: an event
// takes effect exactly once, whatever crashes in between.
//
// Each projection's sink sits behind a circuit breaker: transient failures (connections
// refused, timeouts) feed it, and while it is open the projection's partitions stay at their
// checkpoints, acknowledging and skipping nothing, until a probe succeeds. A permanent
// failure is an event's own: the batch is applied again one event at a time to find it, it
// is parked in ordo.dead_letters, and the partition skips it or halts at it by policy.
// Retry and skip requests on dead letters are carried out here, each in one transaction with
// its resolution (and, for a halted partition, the checkpoint).
class Runtime {
   public:
    Runtime(RuntimeOptions options, std::vector<std::unique_ptr<Projection>> projections,
            platform::Logger log, platform::metrics::Registry& metrics);
    ~Runtime();

    // Runs until `stop` is set. Survives Postgres restarts: it reconnects and carries on.
    void run(const std::atomic<bool>& stop);

    // Slots this instance owns now; for tests and the admin view.
    std::size_t owned_slots() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// The first key of the advisory lock (key, partition) that owns a projection's slot.
int slot_lock_key(const std::string& projection);

// How many events one transaction of `projection` applies: `batch`, or fewer when its
// applies may take long beyond the database (Projection::worst_apply, a webhook's calls), so
// that a whole batch stays within half of the transaction `bound`; at least one. Otherwise a
// batch that calls out slowly would hit the bound, roll back and be sent again, for ever.
std::size_t batch_for(const Projection& projection, std::size_t batch,
                      std::chrono::milliseconds bound);

}  // namespace ordo::projections
