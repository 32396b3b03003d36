// ordo.saga_schedule: claiming, renewing and releasing due saga processes, marking them due,
// and the schedule's gauges.
#include "sagas/pg_schedule.hpp"

#include <algorithm>
#include <cmath>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/metrics.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::sagas {

void PgSchedule::mark_due(pqxx::transaction_base& txn, const std::string& stream) {
    txn.exec_params(
        "INSERT INTO ordo.saga_schedule (stream_id, due_at) VALUES ($1, now()) "
        "ON CONFLICT (stream_id) DO UPDATE SET due_at = now()",
        stream);
}

std::vector<Claim> PgSchedule::claim(std::size_t batch, std::chrono::seconds lease) {
    return pool_.transact([&](pqxx::work& txn) {
        std::vector<Claim> claims;
        for (const auto& row : txn.exec_params(
                 "UPDATE ordo.saga_schedule SET leased_until = clock_timestamp() + "
                 "make_interval(secs => $2) WHERE stream_id IN (SELECT stream_id FROM "
                 "ordo.saga_schedule WHERE due_at <= now() AND (leased_until IS NULL OR "
                 "leased_until < now()) ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
                 "RETURNING stream_id, leased_until::text, greatest(0, extract(epoch FROM "
                 "clock_timestamp() - due_at) * 1000)::bigint",
                 static_cast<long>(batch), static_cast<double>(lease.count()))) {
            claims.push_back({row[0].as<std::string>(), row[1].as<std::string>(),
                              std::chrono::milliseconds{row[2].as<std::int64_t>()}});
        }
        return claims;
    });
}

bool PgSchedule::renew(Claim& claim, std::chrono::seconds lease) {
    auto renewed = pool_.transact([&](pqxx::work& txn) {
        return txn.exec_params(
            "UPDATE ordo.saga_schedule SET leased_until = clock_timestamp() + "
            "make_interval(secs => $3) WHERE stream_id = $1 AND leased_until = "
            "$2::timestamptz RETURNING leased_until::text",
            claim.stream, claim.lease, static_cast<double>(lease.count()));
    });
    if (renewed.empty()) return false;
    claim.lease = renewed[0][0].as<std::string>();
    return true;
}

void PgSchedule::reschedule(const Claim& claim, std::int64_t version,
                            std::optional<std::chrono::milliseconds> wake_in) {
    pool_.transact([&](pqxx::work& txn) {
        auto ours = txn.exec_params(
            "SELECT 1 FROM ordo.saga_schedule WHERE stream_id = $1 AND leased_until = "
            "$2::timestamptz FOR UPDATE",
            claim.stream, claim.lease);
        if (ours.empty()) return;
        const auto current = eventstore::PgSession{txn}.stream_version(claim.stream);
        const bool moved = current != 0 && current != version;
        if (moved) {
            txn.exec_params(
                "UPDATE ordo.saga_schedule SET due_at = now(), leased_until = NULL WHERE "
                "stream_id = $1",
                claim.stream);
        } else if (wake_in) {
            // As a delay from now on the database's clock, which decides when a row is
            // due: a runner whose clock is off neither spins on a row nor wakes it late.
            const auto delay_ms = std::max<std::int64_t>(0, wake_in->count());
            txn.exec_params(
                "UPDATE ordo.saga_schedule SET due_at = now() + make_interval(secs => "
                "$2::float8 / 1000), leased_until = NULL WHERE stream_id = $1",
                claim.stream, delay_ms);
        } else {
            txn.exec_params("DELETE FROM ordo.saga_schedule WHERE stream_id = $1", claim.stream);
        }
    });
}

void PgSchedule::set_aside(const Claim& claim, std::chrono::seconds delay) {
    pool_.transact([&](pqxx::work& txn) {
        txn.exec_params(
            "UPDATE ordo.saga_schedule SET due_at = now() + make_interval(secs => $3), "
            "leased_until = NULL WHERE stream_id = $1 AND leased_until = $2::timestamptz",
            claim.stream, claim.lease, static_cast<double>(delay.count()));
    });
}

void PgSchedule::register_metrics(platform::metrics::Registry& registry) {
    auto figure = [this](const char* sql) {
        return [this, sql]() -> double {
            try {
                return pool_.transact<pqxx::read_transaction>(
                    [&](auto& tx) { return tx.exec1(sql)[0].template as<double>(); });
            } catch (const std::exception&) {
                return std::nan("");
            }
        };
    };
    registry.gauge_callback(
        "ordo_sagas_running", "Sagas (orders) not yet ended", {},
        figure("SELECT count(*) FROM ordo.saga_schedule WHERE stream_id LIKE "
               "'saga.fulfillment-%' OR stream_id LIKE 'orders.fulfillment-%'"));
    registry.gauge_callback(
        "ordo_saga_overdue_seconds",
        "How long the most overdue saga process has waited for a runner (0: none overdue)", {},
        figure("SELECT coalesce(extract(epoch FROM max(now() - due_at)), 0) FROM "
               "ordo.saga_schedule WHERE due_at < now() AND (leased_until IS NULL OR "
               "leased_until < now())"));
}

}  // namespace ordo::sagas
