// Circuit breakers shared by a fleet: the state instances exchange, the store that holds it,
// and a local breaker kept in step so that one instance alone probes a recovering dependency.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "platform/core/circuit_breaker.hpp"
#include "platform/core/log.hpp"

namespace ordo::platform {

// A breaker's state as a fleet shares it. Times are wall-clock milliseconds since the epoch:
// instances do not share a steady clock.
struct SharedBreakerState {
    BreakerState state = BreakerState::closed;
    std::int64_t open_until_ms = 0;  // while open
    int level = 0;
    std::string prober;               // while half-open: the instance that claimed the probe
    std::int64_t probe_until_ms = 0;  // the claim lapses then
    std::string by;                   // who wrote it last

    std::string to_json() const;
    static SharedBreakerState from_json(const std::string& text);  // throws InvalidInput
};

// A KV key may hold only [-/_=.a-zA-Z0-9]; anything else in a breaker's name becomes '_'.
std::string breaker_key(const std::string& name);

// Where shared breaker states live, with compare-and-set on a revision. Every call throws
// platform::Unavailable when the store cannot be reached.
class BreakerStore {
   public:
    struct Entry {
        SharedBreakerState value;
        std::uint64_t revision = 0;
    };
    virtual ~BreakerStore() = default;
    virtual std::optional<Entry> get(const std::string& key) = 0;
    // The new revision, or nullopt when the key exists already.
    virtual std::optional<std::uint64_t> create(const std::string& key,
                                                const SharedBreakerState& value) = 0;
    // The new revision, or nullopt when the key is no longer at `revision`.
    virtual std::optional<std::uint64_t> update(const std::string& key,
                                                const SharedBreakerState& value,
                                                std::uint64_t revision) = 0;
};

// A local breaker kept in step with a fleet through a BreakerStore.
//
// The local breaker judges calls as always. When it opens, or a probe it made closes or
// reopens it, the new state is written to the store by compare-and-set; before each call the
// shared state (read at most every `refresh`) is adopted. When an open state's cool-down
// has elapsed, every instance tries to claim the probe by compare-and-set and exactly one
// wins: it alone lets probes through; the others wait for its verdict, or for its claim to
// lapse after the probe timeout if it died. While the store cannot be reached, the local
// breaker alone decides. Thread-safe.
class SharedBreaker {
   public:
    // `store` may be null: then this is just the local breaker. `on_probe` is called for
    // every probe this instance is let through in half-open (to count them).
    SharedBreaker(CircuitBreaker& local, BreakerStore* store, std::string key, std::string instance,
                  const Clock& clock, Logger log,
                  std::chrono::milliseconds refresh = std::chrono::milliseconds{250},
                  std::function<void()> on_probe = {});

    bool allow();
    void record(CallOutcome outcome, std::chrono::nanoseconds elapsed = {});
    BreakerState state() { return local_.state(); }
    // Takes the fleet's state without asking for a call (never claims a probe), so an
    // instance that makes no calls through this breaker still shows what the fleet sees.
    BreakerState observe();
    // Whether the last look at the store failed (the local breaker is deciding alone).
    bool degraded() const;

   private:
    bool decide();
    std::optional<BreakerStore::Entry> read(bool fresh);
    void adopt(const SharedBreakerState& shared, const std::string& reason);
    bool claim_probe(const BreakerStore::Entry& entry);
    void publish(BreakerState state);
    // Publishes the local breaker's opening when the fleet does not know of it yet (one its
    // own clock made: a probe that timed out).
    void publish_opening();
    std::chrono::steady_clock::time_point steady_at(std::int64_t wall_ms) const;
    std::int64_t wall_ms(std::chrono::steady_clock::time_point at) const;
    std::int64_t now_ms() const;

    CircuitBreaker& local_;
    BreakerStore* store_;
    std::string key_;
    std::string instance_;
    const Clock& clock_;
    Logger log_;
    std::chrono::milliseconds refresh_;

    mutable std::mutex mutex_;
    std::optional<BreakerStore::Entry> cached_;
    std::chrono::steady_clock::time_point read_at_{};
    bool degraded_ = false;
    std::function<void()> on_probe_;
};

}  // namespace ordo::platform
