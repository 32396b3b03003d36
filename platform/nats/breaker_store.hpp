// The BreakerStore on a NATS JetStream key-value bucket, where a fleet's shared circuit
// breakers keep their states.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "platform/core/log.hpp"
#include "platform/core/shared_breaker.hpp"
#include "platform/nats/nats.hpp"

namespace ordo::platform {

// Shared breaker states in a NATS JetStream key-value bucket (created on first use, one
// revision of history kept): compare-and-set is an update on the last revision. Calls wait
// at most `timeout`, so an unreachable NATS turns quickly into Unavailable and the breakers
// fall back to their local state. Thread-safe.
class KvBreakerStore final : public BreakerStore {
   public:
    // `replicas`: the bucket's copies over a JetStream cluster, when this store creates it.
    KvBreakerStore(const nats::ClientSettings& nats, std::string bucket, Logger log,
                   std::chrono::milliseconds timeout = std::chrono::milliseconds{1000},
                   int replicas = 1);
    ~KvBreakerStore() override;
    KvBreakerStore(const KvBreakerStore&) = delete;
    KvBreakerStore& operator=(const KvBreakerStore&) = delete;

    std::optional<Entry> get(const std::string& key) override;
    std::optional<std::uint64_t> create(const std::string& key,
                                        const SharedBreakerState& value) override;
    std::optional<std::uint64_t> update(const std::string& key, const SharedBreakerState& value,
                                        std::uint64_t revision) override;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::platform
