#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "platform/log.hpp"
#include "projections/projection.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::projections {

struct RuntimeOptions {
    std::string database_url;
    int partitions = 16;
    std::size_t batch = 500;
    std::chrono::milliseconds poll_interval{500};
    // An instance counts as alive while its heartbeat is this recent.
    std::chrono::seconds instance_ttl{10};
    std::string instance;  // unique per process
    // Live path: when nats_url is set, events also arrive from JetStream (an ordered consumer
    // per partition) and are applied from there while they follow the checkpoint without a
    // gap; anything else is read from the store. JetStream is a cache, the store the truth.
    std::string nats_url;
    std::string stream = "ORDO_EVENTS";
    std::string subject_prefix = "ordo.events";
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

}  // namespace ordo::projections
