// A runtime's status: lag and breaker state of its owned slots.

#include "projections/projection_status.hpp"

#include <map>

#include <pqxx/pqxx>

#include "eventstore/lag.hpp"
#include "platform/core/metrics.hpp"
#include "projections/sink_breakers.hpp"

namespace ordo::projections {
namespace {

// Lag is counted up to this many events per partition: enough to tell "far behind".
constexpr std::int64_t kMaxLagCount = 100'000;

}  // namespace

struct ProjectionStatus::Impl {
    platform::pg::Pool& pool;
    int partitions;
    std::string instance;
    std::chrono::milliseconds interval;
    const platform::Clock& clock;
    platform::Logger log;
    platform::metrics::Registry& metrics;
    std::chrono::steady_clock::time_point next{};
    bool warned = false;

    void write(const std::vector<Projection*>& projections, const std::vector<Slot>& slots,
               SinkBreakers& breakers) {
        pool.transact([&](pqxx::work& txn) {
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
                for (const auto& lag :
                     eventstore::partition_lag(txn, name, partitions, projection->categories(),
                                               owned_partitions, kMaxLagCount)) {
                    const platform::metrics::Labels labels{
                        {"projection", name}, {"partition", std::to_string(lag.partition)}};
                    metrics
                        .gauge("ordo_projection_lag_events",
                               "Events of the partition not yet applied (counted up to "
                               "100000)",
                               labels)
                        .set(static_cast<double>(lag.events));
                    metrics
                        .gauge("ordo_projection_lag_seconds",
                               "How long the oldest event not yet applied has waited", labels)
                        .set(lag.oldest_seconds);
                    const auto* slot = owned_slots.at(lag.partition);
                    txn.exec_params(
                        "INSERT INTO ordo.projection_status (projection, partition, "
                        "instance, breaker, lag_events, lag_seconds, halted_on, updated_at) "
                        "VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT (projection, "
                        "partition) DO UPDATE SET instance = EXCLUDED.instance, breaker = "
                        "EXCLUDED.breaker, lag_events = EXCLUDED.lag_events, lag_seconds = "
                        "EXCLUDED.lag_seconds, halted_on = EXCLUDED.halted_on, updated_at = "
                        "now()",
                        name, lag.partition, instance, breaker, lag.events, lag.oldest_seconds,
                        slot->halted_on);
                }
            }
        });
    }
};

ProjectionStatus::ProjectionStatus(platform::pg::Pool& pool, int partitions, std::string instance,
                                   std::chrono::milliseconds interval, const platform::Clock& clock,
                                   platform::Logger log, platform::metrics::Registry& metrics)
    : impl_{new Impl{pool, partitions, std::move(instance), interval, clock, std::move(log),
                     metrics}} {}

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
