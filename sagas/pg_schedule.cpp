// ordo.saga_schedule: claiming, renewing and releasing due saga processes, marking them due,
// and the schedule's gauges.
#include "sagas/pg_schedule.hpp"

#include <algorithm>
#include <cmath>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "platform/core/metrics.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::sagas {

void PgSchedule::mark_due(pqxx::transaction_base& txn, std::vector<std::string> streams) {
    if (streams.empty()) return;
    // Each stream once (one INSERT ... ON CONFLICT may not touch a row twice), in order: two
    // intake transactions marking the same processes lock their rows in the same order.
    std::sort(streams.begin(), streams.end());
    streams.erase(std::unique(streams.begin(), streams.end()), streams.end());
    txn.exec_params(
        "INSERT INTO ordo.saga_schedule AS s (stream_id, due_at) SELECT id, now() FROM "
        "jsonb_array_elements_text($1::jsonb) WITH ORDINALITY AS a(id, n) ORDER BY n ON "
        "CONFLICT (stream_id) DO UPDATE SET due_at = now(), marks = s.marks + 1",
        nlohmann::json(streams).dump());
}

std::vector<Claim> PgSchedule::claim(std::size_t batch, std::chrono::seconds lease) {
    return pool_.transact<pqxx::nontransaction>([&](pqxx::nontransaction& txn) {
        std::vector<Claim> claims;
        for (const auto& row : txn.exec_params(
                 "UPDATE ordo.saga_schedule SET leased_until = clock_timestamp() + "
                 "make_interval(secs => $2) WHERE stream_id IN (SELECT stream_id FROM "
                 "ordo.saga_schedule WHERE due_at <= now() AND (leased_until IS NULL OR "
                 "leased_until < now()) ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
                 "RETURNING stream_id, leased_until::text, greatest(0, extract(epoch FROM "
                 "clock_timestamp() - due_at) * 1000)::bigint, marks",
                 static_cast<long>(batch), static_cast<double>(lease.count()))) {
            claims.push_back({row[0].as<std::string>(), row[1].as<std::string>(),
                              row[3].as<std::int64_t>(),
                              std::chrono::milliseconds{row[2].as<std::int64_t>()}});
        }
        return claims;
    });
}

bool PgSchedule::renew(Claim& claim, std::chrono::seconds lease) {
    auto renewed = pool_.transact<pqxx::nontransaction>([&](pqxx::nontransaction& txn) {
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

void PgSchedule::reschedule(const Claim& claim, std::optional<std::chrono::milliseconds> wake_in) {
    pool_.transact<pqxx::nontransaction>([&](pqxx::nontransaction& txn) {
        if (!wake_in) {
            // Nothing to wake it for: off the schedule, unless it was marked meanwhile.
            const auto gone = txn.exec_params(
                "DELETE FROM ordo.saga_schedule WHERE stream_id = $1 AND leased_until = "
                "$2::timestamptz AND marks = $3",
                claim.stream, claim.lease, claim.marks);
            if (gone.affected_rows() > 0) return;
        }
        // A delay from now on the database's clock, which decides when a row is due: a
        // runner whose clock is off neither spins on a row nor wakes it late. The UPDATE
        // reads `marks` on the row it locks, after any mark in flight has committed.
        const auto delay_ms = wake_in ? std::max<std::int64_t>(0, wake_in->count()) : 0;
        txn.exec_params(
            "UPDATE ordo.saga_schedule SET due_at = CASE WHEN marks = $3 THEN now() + "
            "make_interval(secs => $4::float8 / 1000) ELSE now() END, leased_until = NULL "
            "WHERE stream_id = $1 AND leased_until = $2::timestamptz",
            claim.stream, claim.lease, claim.marks, delay_ms);
    });
}

void PgSchedule::set_aside(const Claim& claim, std::chrono::seconds delay) {
    pool_.transact<pqxx::nontransaction>([&](pqxx::nontransaction& txn) {
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
