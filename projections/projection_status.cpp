// A runtime's status: lag and breaker state of its owned slots.

#include "projections/projection_status.hpp"

#include <map>

#include "platform/core/metrics.hpp"
#include "projections/sink_breakers.hpp"

namespace ordo::projections {
namespace {

// Lag is counted up to this many events of a projection's partitions together: enough to
// tell "far behind", and a bound on what one count reads.
constexpr std::int64_t kMaxLagCount = 100'000;

}  // namespace

struct ProjectionStatus::Impl {
    SlotStore& store;
    std::string instance;
    std::chrono::milliseconds interval;
    const platform::Clock& clock;
    platform::Logger log;
    platform::metrics::Registry& metrics;
    std::chrono::steady_clock::time_point next{};
    bool warned = false;

    void write(const std::vector<Projection*>& projections, const std::vector<Slot>& slots,
               SinkBreakers& breakers) {
        store.transact([&](SlotTxn& txn) {
            std::vector<SlotStatus> statuses;
            for (const auto* projection : projections) {
                const auto name = projection->name();
                std::vector<int> owned_partitions;
                std::map<int, const Slot*> owned_slots;
                for (const auto& s : slots) {
                    if (s.projection != projection || !s.owned) continue;
                    owned_partitions.push_back(s.partition);
                    owned_slots[s.partition] = &s;
                }
                if (owned_slots.empty()) continue;
                const auto breaker = platform::to_string(breakers.of(name).state());
                const auto transitions = breakers.transitions(name);
                for (const auto& lag :
                     txn.lag(name, projection->categories(), owned_partitions, kMaxLagCount)) {
                    const platform::metrics::Labels labels{
                        {"projection", name}, {"partition", std::to_string(lag.partition)}};
                    metrics
                        .gauge("ordo_projection_lag_events",
                               "Events of the partition not yet applied (a projection's "
                               "partitions counted together up to 100000: beyond, at least)",
                               labels)
                        .set(static_cast<double>(lag.events));
                    metrics
                        .gauge("ordo_projection_lag_seconds",
                               "How long the oldest event not yet applied has waited", labels)
                        .set(lag.oldest_seconds);
                    statuses.push_back({.projection = name,
                                        .partition = lag.partition,
                                        .instance = instance,
                                        .breaker = breaker,
                                        .lag = lag,
                                        .halted_on = owned_slots.at(lag.partition)->halted_on,
                                        .breaker_transitions = transitions});
                }
            }
            txn.record_statuses(statuses);
        });
    }
};

ProjectionStatus::ProjectionStatus(SlotStore& store, std::string instance,
                                   std::chrono::milliseconds interval, const platform::Clock& clock,
                                   platform::Logger log, platform::metrics::Registry& metrics)
    : impl_{new Impl{store, std::move(instance), interval, clock, std::move(log), metrics}} {}

ProjectionStatus::~ProjectionStatus() = default;

void ProjectionStatus::soon() {
    impl_->next = {};
}

void ProjectionStatus::write_if_due(const std::vector<Projection*>& projections,
                                    const std::vector<Slot>& slots, SinkBreakers& breakers) {
    auto& d = *impl_;
    if (d.clock.steady_now() < d.next) return;
    d.next = d.clock.steady_now() + d.interval;
    breakers.observe_all();
    try {
        d.write(projections, slots, breakers);
        d.warned = false;
    } catch (const std::exception& e) {
        if (!d.warned) {
            d.log.warn("cannot write projection status", {{"error", e.what()}});
            d.warned = true;
        }
    }
}

}  // namespace ordo::projections
