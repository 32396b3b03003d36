#pragma once

// The relay: publishes the event store to NATS JetStream, one leader per shard.

#include <atomic>
#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "eventstore/topology.hpp"
#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/jetstream.hpp"

namespace ordo::platform::otlp {
class Exporter;
}

namespace ordo::relay {

struct RelayOptions {
    std::string database_url;  // the ordo_relay role
    // P: subject <prefix>.<stream_hash mod P>.<category>.
    int partitions = eventstore::kDefaultPartitions;
    std::string stream = eventstore::kDefaultJetStream;
    std::string subject_prefix = eventstore::kDefaultSubjectPrefix;
    std::chrono::seconds duplicate_window{120};
    std::chrono::hours max_age{168};
    int replicas = 1;                              // the stream's copies over a JetStream cluster
    std::size_t batch = 500;                       // events read and published per round
    std::size_t window = 256;                      // unacknowledged publishes at once
    std::chrono::milliseconds poll_interval{500};  // when no NOTIFY arrives
    std::chrono::milliseconds publish_timeout{5000};  // per acknowledgement
    int shard = 0;                                    // the event-store shard this relay serves
    std::string instance;                             // names this process in logs
    // When set, a PRODUCER span per published event.
    platform::otlp::Exporter* spans = nullptr;
};

// Publishes the event store to JetStream in commit order, (transaction id, position), one
// message per event with Nats-Msg-Id = event id. One relay per shard leads, chosen by a
// PostgreSQL advisory lock held by a session of its own; the others stand by and take over
// when that session ends. The checkpoint (and, per partition, the order key of the last
// event published there) advances only past events JetStream acknowledged, in the leader's
// session, so a crash republishes at most the unacknowledged tail, which the stream's
// duplicate window absorbs. Survives restarts of PostgreSQL and NATS by itself.
class Relay {
   public:
    Relay(RelayOptions options, platform::jetstream::Client& client, platform::Logger log,
          platform::metrics::Registry& metrics);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Stands by or leads until `stop` is set; then releases the lock and returns.
    void run(const std::atomic<bool>& stop);
    bool is_leader() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::relay
