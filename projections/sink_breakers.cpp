// The projections' sink breakers: construction, metrics and log lines of their transitions.

#include "projections/sink_breakers.hpp"

#include <deque>
#include <mutex>
#include <random>

#include <nlohmann/json.hpp>

#include "platform/core/metrics.hpp"
#include "platform/core/utc_time.hpp"

namespace ordo::projections {
namespace {

// A projection's sink behind its breaker, shared with the fleet when a store is given.
struct Sink {
    std::unique_ptr<platform::CircuitBreaker> local;
    std::unique_ptr<platform::SharedBreaker> breaker;
    // Newest first; guarded by the Impl's mutex (transitions fire on any caller's thread).
    std::unique_ptr<std::deque<nlohmann::json>> transitions;
};

}  // namespace

struct SinkBreakers::Impl {
    platform::BreakerOptions options;
    platform::BreakerStore* store;
    std::string instance;
    const platform::Clock& clock;
    platform::Logger log;
    platform::metrics::Registry& metrics;
    std::function<void()> on_transition;
    std::mt19937_64 random_engine{std::random_device{}()};
    std::uniform_real_distribution<double> uniform{0.0, 1.0};
    std::map<std::string, Sink> sinks;  // by projection
    mutable std::mutex transitions_mutex;

    void add(const std::string& name) {
        auto seen = std::make_unique<std::deque<nlohmann::json>>();
        auto* history = seen.get();
        auto& state = metrics.gauge("ordo_breaker_state",
                                    "Circuit breaker state: 0 closed, 1 open, 2 half-open",
                                    {{"breaker", name}});
        Sink sink;
        sink.local = std::make_unique<platform::CircuitBreaker>(
            name, options, clock, [this] { return uniform(random_engine); },
            [this, &state, history](const platform::BreakerTransition& t) {
                state.set(static_cast<double>(t.to));
                metrics
                    .counter("ordo_breaker_transitions_total", "Circuit breaker state changes",
                             {{"breaker", t.breaker},
                              {"from", platform::to_string(t.from)},
                              {"to", platform::to_string(t.to)}})
                    .inc();
                auto fields = nlohmann::json{{"breaker", t.breaker},
                                             {"from", platform::to_string(t.from)},
                                             {"to", platform::to_string(t.to)},
                                             {"reason", t.reason}};
                if (t.to == platform::BreakerState::open) {
                    log.warn(
                        "breaker opened; the projection's partitions wait at their "
                        "checkpoints",
                        fields);
                } else {
                    log.info("breaker state changed", fields);
                }
                {
                    std::lock_guard lock{transitions_mutex};
                    fields["at"] = platform::format_utc(clock.now());
                    history->push_front(fields);
                    if (history->size() > kTransitionsKept) history->pop_back();
                }
                if (on_transition) on_transition();
            });
        sink.transitions = std::move(seen);
        auto& probes = metrics.counter("ordo_breaker_probes_total",
                                       "Calls this instance let through a half-open breaker",
                                       {{"breaker", name}});
        sink.breaker = std::make_unique<platform::SharedBreaker>(
            *sink.local, store, platform::breaker_key("projection." + name), instance, clock,
            log.with_component("breaker"), std::chrono::milliseconds{250},
            [&probes] { probes.inc(); });
        sinks.emplace(name, std::move(sink));
    }
};

SinkBreakers::SinkBreakers(const std::vector<std::string>& projections,
                           platform::BreakerOptions options, platform::BreakerStore* store,
                           std::string instance, const platform::Clock& clock, platform::Logger log,
                           platform::metrics::Registry& metrics,
                           std::function<void()> on_transition)
    : impl_{new Impl{options, store, std::move(instance), clock, std::move(log), metrics,
                     std::move(on_transition)}} {
    for (const auto& name : projections) impl_->add(name);
}

SinkBreakers::~SinkBreakers() = default;

platform::SharedBreaker& SinkBreakers::of(const std::string& projection) {
    return *impl_->sinks.at(projection).breaker;
}

std::string SinkBreakers::transitions(const std::string& projection) const {
    const auto& sink = impl_->sinks.at(projection);
    std::lock_guard lock{impl_->transitions_mutex};
    auto list = nlohmann::json::array();
    for (const auto& t : *sink.transitions) list.push_back(t);
    return list.dump();
}

void SinkBreakers::observe_all() {
    for (auto& [name, sink] : impl_->sinks) sink.breaker->observe();
}

}  // namespace ordo::projections
