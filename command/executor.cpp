#include "command/executor.hpp"

#include <random>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/errors.hpp"
#include "platform/metrics.hpp"
#include "platform/pg.hpp"

namespace ordo::command {
namespace {

constexpr const char* kFingerprint = "encode(sha256(convert_to($2, 'UTF8')), 'hex')";

std::optional<Reply> claim_or_replay(pqxx::transaction_base& txn, const Dedup& dedup) {
    // The first request inserts the row and holds it until commit; a concurrent repeat
    // waits here, then finds the finished row and replays it.
    auto claimed = txn.exec_params(
        std::string{"INSERT INTO ordo.command_log (key, fingerprint, status, response) "
                    "VALUES ($1, "} +
            kFingerprint + ", 0, 'null') ON CONFLICT (key) DO NOTHING RETURNING 1",
        dedup.key, dedup.fingerprint);
    if (!claimed.empty()) return std::nullopt;
    auto row = txn.exec_params1(std::string{"SELECT fingerprint = "} + kFingerprint +
                                    ", status, response::text FROM ordo.command_log WHERE key = $1",
                                dedup.key, dedup.fingerprint);
    if (!row[0].as<bool>()) {
        throw KeyReused("this key was already used for a different request");
    }
    return Reply{row[1].as<int>(), nlohmann::json::parse(row[2].as<std::string>()), true, false};
}

}  // namespace

Executor::Executor(platform::pg::Pool& pool, eventstore::AppendNotifier* notifier,
                   platform::metrics::Registry& metrics, platform::Logger log, Options options)
    : pool_{pool},
      notifier_{notifier},
      log_{std::move(log)},
      options_{options},
      conflicts_{metrics.counter("ordo_command_conflicts_total",
                                 "Commands re-run after a concurrency conflict")},
      replays_{metrics.counter("ordo_command_replays_total",
                               "Commands answered from the command log without running again")},
      appends_{metrics.counter("ordo_command_appends_total",
                               "Commands whose events were committed to the event store")},
      not_started_{metrics.counter(
          "ordo_command_not_started_total",
          "Commands refused before they started: their stream's queue was full, or neither "
          "their turn nor a database connection came within the start timeout")},
      turns_{{.max_waiting_per_key = options.max_waiting_per_stream,
              .max_waiting = options.max_waiting}} {
    metrics.gauge_callback("ordo_command_waiting", "Commands waiting for their stream's turn", {},
                           [this] { return static_cast<double>(turns_.waiting()); });
}

Reply Executor::run(const std::string& stream, const std::optional<Dedup>& dedup,
                    const std::function<Reply(pqxx::transaction_base&)>& unit) {
    thread_local std::mt19937 rng{std::random_device{}()};
    const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    std::optional<platform::KeyedTurns::Turn> turn;
    try {
        turn.emplace(turns_.take(stream, deadline));
    } catch (const platform::Overloaded&) {
        not_started_.inc();
        throw;
    }
    for (int attempt = 1;; ++attempt) {
        try {
            // Later attempts have started already: they wait for a connection as long as
            // the pool allows, not only what is left of the start timeout.
            auto by = attempt == 1
                          ? deadline
                          : std::chrono::steady_clock::now() + pool_.options().acquire_timeout;
            auto reply = pool_.transact(by, [&](pqxx::work& txn) -> Reply {
                if (dedup) {
                    if (auto stored = claim_or_replay(txn, *dedup)) return *stored;
                }
                auto reply = unit(txn);
                if (dedup) {
                    if (reply.status >= 500) throw std::logic_error("a 5xx outcome is not final");
                    txn.exec_params(
                        "UPDATE ordo.command_log SET status = $2, response = $3::jsonb "
                        "WHERE key = $1",
                        dedup->key, reply.status, reply.body.dump());
                }
                return reply;
            });
            if (reply.replayed) replays_.inc();
            if (reply.appended) appends_.inc();
            if (reply.appended && notifier_) notifier_->signal();
            return reply;
        } catch (const eventstore::ConcurrencyConflict&) {
            conflicts_.inc();
            if (attempt >= options_.max_attempts) throw;
        } catch (const platform::Overloaded&) {
            not_started_.inc();  // this attempt and any before it left nothing behind
            throw;
        }
        auto cap = options_.base_backoff * (1 << std::min(attempt, 6));
        std::uniform_int_distribution<long> jitter{0, cap.count()};
        std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
    }
}

Executor::Expired Executor::expire(std::chrono::hours age, std::int64_t batch, int max_batches) {
    if (batch < 1 || max_batches < 1) {
        throw std::invalid_argument("expire needs a batch and max_batches of at least 1");
    }
    // One cutoff for the whole run: keys recorded meanwhile are not its business. It travels
    // as ISO 8601 in UTC, which reads back exactly whatever the session's DateStyle or zone.
    const auto cutoff = pool_.transact<pqxx::nontransaction>([&](auto& txn) {
        return txn
            .exec_params1(
                "SELECT to_char((now() - make_interval(hours => $1)) AT TIME ZONE "
                "'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')",
                static_cast<int>(age.count()))[0]
            .template as<std::string>();
    });
    Expired expired;
    for (;;) {
        auto deleted = pool_.transact([&](pqxx::work& txn) {
            return static_cast<std::int64_t>(
                txn.exec_params(
                       "DELETE FROM ordo.command_log WHERE key IN (SELECT key FROM "
                       "ordo.command_log WHERE created_at < $1::timestamptz ORDER BY created_at "
                       "LIMIT $2 FOR UPDATE SKIP LOCKED)",
                       cutoff, batch)
                    .affected_rows());
        });
        ++expired.batches;
        expired.records += deleted;
        if (deleted < batch || expired.batches >= max_batches) return expired;
    }
}

}  // namespace ordo::command
