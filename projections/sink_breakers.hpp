#pragma once

// One circuit breaker per projection around its sink, shared with the fleet through a
// breaker store when one is given: its state goes to the ordo_breaker_* metrics and the log.

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "platform/core/circuit_breaker.hpp"
#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "platform/core/shared_breaker.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::projections {

// Not thread-safe beyond what SharedBreaker is: the runtime's thread uses it.
class SinkBreakers {
   public:
    // `on_transition` runs after every state change of any breaker (the runtime shows it in
    // its status at once).
    SinkBreakers(const std::vector<std::string>& projections, platform::BreakerOptions options,
                 platform::BreakerStore* store, std::string instance, const platform::Clock& clock,
                 platform::Logger log, platform::metrics::Registry& metrics,
                 std::function<void()> on_transition);
    ~SinkBreakers();
    SinkBreakers(const SinkBreakers&) = delete;
    SinkBreakers& operator=(const SinkBreakers&) = delete;

    platform::SharedBreaker& of(const std::string& projection);
    // The last kTransitionsKept transitions this instance saw of the projection's breaker,
    // newest first, as a JSON array of {from, to, reason, at} (RFC 3339). Thread-safe.
    static constexpr std::size_t kTransitionsKept = 5;
    std::string transitions(const std::string& projection) const;
    // Takes the fleet's state of every breaker without asking for a call.
    void observe_all();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::projections
