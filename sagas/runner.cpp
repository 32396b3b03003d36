#include "sagas/runner.hpp"

#include <algorithm>
#include <future>
#include <map>
#include <random>
#include <thread>

#include <pqxx/pqxx>

#include "domain/overloaded.hpp"
#include "eventstore/append_notifier.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/hops.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::sagas {
namespace {

std::int64_t to_ms(platform::Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// A process as loaded: its state, version, and what its events' metadata carries on.
struct Loaded {
    State state;
    std::int64_t version = 0;
    eventstore::Metadata origin;                      // of its first event: trace, correlation
    std::string last_event_id;                        // causation for what comes next
    std::map<std::string, std::string> scheduled_by;  // step -> id of its StepScheduled event
};

// Per-kind outcome counters: the saga metrics count one per order, so in choreography
// they follow the orders reactor, which decides the order's fate.
struct Outcomes {
    platform::metrics::Counter& started;
    platform::metrics::Counter& completed;
    platform::metrics::Counter& compensated;
    platform::metrics::Counter& failed;
    platform::metrics::Histogram& duration;
};

}  // namespace

struct Runner::Impl {
    RunnerOptions options;
    platform::pg::Pool& pool;
    CommandBus& bus;
    eventstore::AppendNotifier* notifier;
    const platform::Clock& clock;
    platform::Logger log;
    Outcomes outcomes;
    platform::metrics::Counter& attempts_ok;
    platform::metrics::Counter& attempts_rejected;
    platform::metrics::Counter& attempts_failed;
    platform::metrics::Counter& not_sent;
    platform::metrics::Counter& conflicts;
    platform::metrics::Counter& parked;
    platform::metrics::Counter& lost_leases;
    // From a step's first scheduling to its command answered, to its outcome recorded; and
    // from a process falling due to a runner claiming it.
    platform::metrics::Histogram& answered_hop;
    platform::metrics::Histogram& recorded_hop;
    platform::metrics::Histogram& queue_hop;

    Impl(RunnerOptions o, platform::pg::Pool& p, CommandBus& b, eventstore::AppendNotifier* n,
         const platform::Clock& c, platform::Logger l, platform::metrics::Registry& m)
        : options{std::move(o)},
          pool{p},
          bus{b},
          notifier{n},
          clock{c},
          log{std::move(l)},
          outcomes{m.counter("ordo_sagas_started_total", "Sagas started"),
                   m.counter("ordo_sagas_completed_total", "Sagas that confirmed their order"),
                   m.counter("ordo_sagas_compensated_total",
                             "Sagas that undid their steps and cancelled their order"),
                   m.counter("ordo_sagas_failed_total",
                             "Sagas that could not compensate or finish (need an operator)"),
                   m.histogram("ordo_saga_duration_seconds", "From saga start to its end", {},
                               {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300})},
          attempts_ok{m.counter("ordo_saga_step_attempts_total", "Saga step attempts by outcome",
                                {{"result", "succeeded"}})},
          attempts_rejected{m.counter("ordo_saga_step_attempts_total",
                                      "Saga step attempts by outcome", {{"result", "rejected"}})},
          attempts_failed{m.counter("ordo_saga_step_attempts_total",
                                    "Saga step attempts by outcome", {{"result", "failed"}})},
          not_sent{m.counter("ordo_saga_steps_not_sent_total",
                             "Saga step commands the command side would not start (overloaded); "
                             "not attempts: the step is sent again later")},
          conflicts{m.counter("ordo_saga_conflicts_total",
                              "Saga appends re-run after another writer appended first")},
          parked{m.counter("ordo_saga_processes_parked_total",
                           "Saga processes that could not be run and wait for an operator")},
          lost_leases{m.counter("ordo_saga_leases_lost_total",
                                "Saga processes another runner took over mid-run (a runner "
                                "stalled past its lease)")},
          answered_hop{platform::metrics::hop(m, "saga_command_answered")},
          recorded_hop{platform::metrics::hop(m, "saga_outcome_recorded")},
          queue_hop{platform::metrics::hop(m, "saga_queue_wait")} {}

    std::int64_t now_ms() const { return to_ms(clock.now()); }
    double seconds_since(std::int64_t ms) const {
        return static_cast<double>(std::max<std::int64_t>(0, now_ms() - ms)) / 1000.0;
    }

    // A claimed process and the lease that makes it this runner's.
    struct Claim {
        std::string stream;
        std::string lease;  // leased_until, as the database wrote it
        std::chrono::steady_clock::time_point taken = std::chrono::steady_clock::now();
    };

    // Extends the lease once a third of it has passed, so a long process (many rounds, slow
    // commands) stays this runner's as long as no round takes two thirds of the lease;
    // false when another runner took it over meanwhile.
    bool keep_lease(Claim& claim) {
        const auto now = std::chrono::steady_clock::now();
        if (now - claim.taken < options.lease / 3) return true;
        auto renewed = pool.transact([&](pqxx::work& txn) {
            return txn.exec_params(
                "UPDATE ordo.saga_schedule SET leased_until = clock_timestamp() + "
                "make_interval(secs => $3) WHERE stream_id = $1 AND leased_until = "
                "$2::timestamptz RETURNING leased_until::text",
                claim.stream, claim.lease, static_cast<double>(options.lease.count()));
        });
        if (renewed.empty()) return false;
        claim.lease = renewed[0][0].as<std::string>();
        claim.taken = now;
        return true;
    }

    // Due and lease times are the database's clock, the one the intake writes with.
    std::vector<Claim> claim() {
        return pool.transact([&](pqxx::work& txn) {
            std::vector<Claim> claims;
            for (const auto& row : txn.exec_params(
                     "UPDATE ordo.saga_schedule SET leased_until = clock_timestamp() + "
                     "make_interval(secs => $2) WHERE stream_id IN (SELECT stream_id FROM "
                     "ordo.saga_schedule WHERE due_at <= now() AND (leased_until IS NULL OR "
                     "leased_until < now()) ORDER BY due_at LIMIT $1 FOR UPDATE SKIP LOCKED) "
                     "RETURNING stream_id, leased_until::text, "
                     "greatest(0, extract(epoch FROM clock_timestamp() - due_at))::float8",
                     static_cast<long>(options.claim_batch),
                     static_cast<double>(options.lease.count()))) {
                claims.push_back({row[0].as<std::string>(), row[1].as<std::string>()});
                queue_hop.observe(row[2].as<double>());
            }
            return claims;
        });
    }

    Loaded load(const std::string& stream) {
        return pool.transact<pqxx::read_transaction>([&](auto& txn) {
            Loaded loaded;
            for (std::int64_t from = 1;;) {
                auto batch = eventstore::EventStore::read_stream(txn, stream, from, 500);
                for (const auto& e : batch) {
                    if (loaded.version == 0) loaded.origin = e.metadata;
                    loaded.version = e.version;
                    loaded.last_event_id = e.event_id;
                    auto event = decode(e.type, e.payload);
                    if (!event) {
                        throw platform::InvalidInput("undecodable event " + e.type + " at " +
                                                     stream + "@" + std::to_string(e.version));
                    }
                    if (const auto* s = std::get_if<StepScheduled>(&*event)) {
                        loaded.scheduled_by[s->name] = e.event_id;
                    }
                    loaded.state = evolve(std::move(loaded.state), *event);
                }
                if (batch.size() < 500) break;
                from = loaded.version + 1;
            }
            return loaded;
        });
    }

    eventstore::Metadata metadata(const Loaded& loaded, const std::string& causation) const {
        eventstore::Metadata m = loaded.origin;  // the trace whole: ids, flags, tracestate
        m.causation_id = causation;
        m.command_id.clear();
        m.actor = "saga";
        return m;
    }

    // Appends at the loaded version and folds the events into `loaded`, so the next round
    // needs no reload; false when another writer got there first.
    bool append(const std::string& stream, Loaded& loaded, const Events& events) {
        std::vector<eventstore::NewEvent> batch;
        for (const auto& e : events) {
            batch.push_back({platform::new_uuid(), event_type(e), encode_payload(e),
                             metadata(loaded, loaded.last_event_id)});
        }
        eventstore::AppendResult result;
        try {
            result = pool.transact([&](pqxx::work& txn) {
                return eventstore::EventStore::append(
                    txn, stream, eventstore::ExpectedVersion::exact(loaded.version), batch);
            });
        } catch (const eventstore::ConcurrencyConflict&) {
            conflicts.inc();
            return false;
        }
        if (notifier) notifier->signal();
        for (std::size_t i = 0; i < events.size(); ++i) {
            if (const auto* s = std::get_if<StepScheduled>(&events[i])) {
                loaded.scheduled_by[s->name] = batch[i].event_id;
            }
            loaded.state = evolve(std::move(loaded.state), events[i]);
        }
        if (loaded.version == 0) loaded.origin = batch.front().metadata;
        loaded.version = result.last_version;
        loaded.last_event_id = batch.back().event_id;
        return true;
    }

    // `fresh`: the process had decided nothing before these events.
    void count_outcome(ProcessKind kind, const Loaded& process, const Events& events, bool fresh) {
        // One count per order: the orchestrator, or the orders reactor in choreography.
        if (kind != ProcessKind::kFulfillment && kind != ProcessKind::kOrders) return;
        if (fresh && std::any_of(events.begin(), events.end(), [](const Event& e) {
                return std::holds_alternative<StepScheduled>(e) ||
                       std::holds_alternative<DeadlineSet>(e);
            })) {
            outcomes.started.inc();
        }
        for (const auto& e : events) {
            const auto* end = std::get_if<ProcessEnded>(&e);
            if (!end) continue;
            switch (end->status) {
                case ProcessStatus::kCompleted:
                    outcomes.completed.inc();
                    break;
                case ProcessStatus::kCompensated:
                    outcomes.compensated.inc();
                    break;
                case ProcessStatus::kFailed:
                    outcomes.failed.inc();
                    log.error("saga failed: an operator must finish it",
                              {{"order_id", process.state.order.order_id},
                               {"reason", end->reason},
                               {"trace_id", process.origin.trace_id}});
                    break;
                case ProcessStatus::kRunning:
                    break;
            }
            outcomes.duration.observe(static_cast<double>(end->at_ms - process.state.started_ms) /
                                      1000.0);
        }
    }

    struct Sent {
        Events recorded;        // the outcomes of the attempts
        bool not_sent = false;  // some command was not started: its step is still due
    };

    // Sends the due steps' commands at once and returns their outcomes as events.
    Sent attempt(const std::string& stream, const Loaded& loaded, const std::vector<Step>& due) {
        thread_local std::mt19937_64 rng{std::random_device{}()};
        std::uniform_real_distribution<double> jitter{0.0, 1.0};
        std::vector<std::future<domain::CommandOutcome>> sent;
        for (const auto& step : due) {
            const int number = step.attempts + 1;
            auto id = stream + "/" + step.name + "/" + std::to_string(number);
            auto cause = metadata(loaded, loaded.scheduled_by.count(step.name)
                                              ? loaded.scheduled_by.at(step.name)
                                              : loaded.last_event_id);
            sent.push_back(
                std::async(std::launch::async,
                           [this, id, command = step.command, cause]() -> domain::CommandOutcome {
                               try {
                                   return bus.send(id, command, cause);
                               } catch (const std::exception& e) {
                                   return domain::CommandFailed{e.what()};
                               }
                           }));
        }
        Sent result;
        for (std::size_t i = 0; i < due.size(); ++i) {
            auto outcome = sent[i].get();
            if (due[i].attempts == 0) answered_hop.observe(seconds_since(due[i].scheduled_ms));
            std::visit(domain::Overloaded{
                           [&](const domain::CommandSucceeded&) { attempts_ok.inc(); },
                           [&](const domain::CommandRejected&) { attempts_rejected.inc(); },
                           [&](const domain::CommandFailed& failed) {
                               attempts_failed.inc();
                               log.warn("saga step failed; it will be retried",
                                        {{"stream", stream},
                                         {"step", due[i].name},
                                         {"attempt", due[i].attempts + 1},
                                         {"error", failed.message},
                                         {"trace_id", loaded.origin.trace_id}});
                           },
                           [&](const domain::CommandNotSent& refused) {
                               not_sent.inc();
                               result.not_sent = true;
                               log.log(platform::LogLevel::debug,
                                       "saga step not sent: the command side is overloaded",
                                       {{"stream", stream},
                                        {"step", due[i].name},
                                        {"error", refused.message},
                                        {"trace_id", loaded.origin.trace_id}});
                           },
                       },
                       outcome);
            for (auto& e : record_attempt(due[i], due[i].attempts + 1, outcome, options.policy,
                                          now_ms(), jitter(rng))) {
                result.recorded.push_back(std::move(e));
            }
        }
        return result;
    }

    // Runs one process until nothing is due now; returns the version it ended at and when
    // it next needs attention. Stops early if the lease was lost: the process is another
    // runner's then, and rescheduling it is too.
    std::pair<std::int64_t, std::optional<std::int64_t>> process(Claim& claim) {
        const auto& stream = claim.stream;
        const auto id = parse_stream(stream);
        if (!id) throw platform::InvalidInput("not a process stream: " + stream);
        auto loaded = load(stream);
        for (int round = 0;; ++round) {
            if (round > 200) return {loaded.version, now_ms() + 1000};  // let others run
            if (!keep_lease(claim)) {
                lost_leases.inc();
                return {loaded.version, std::nullopt};
            }
            auto next = advance(id->kind, loaded.state, options.policy, now_ms());
            if (!next.empty()) {
                const bool fresh = loaded.state.steps.empty() && loaded.state.deadlines.empty();
                if (append(stream, loaded, next)) {
                    count_outcome(id->kind, loaded, next, fresh);
                } else {
                    loaded = load(stream);
                }
                continue;
            }
            auto due = due_steps(loaded.state, now_ms());
            if (due.empty()) return {loaded.version, next_wake_ms(loaded.state)};
            // A resend after a conflict carries the same command ids: answered from the
            // command log, it changes nothing.
            auto sent = attempt(stream, loaded, due);
            if (!sent.recorded.empty() && !append(stream, loaded, sent.recorded)) {
                loaded = load(stream);
            } else if (!sent.recorded.empty() && !sent.not_sent) {
                for (const auto& step : due) {
                    if (step.attempts == 0) recorded_hop.observe(seconds_since(step.scheduled_ms));
                }
            }
            if (sent.not_sent) {
                // Back off instead of sending again at once into an overloaded command side.
                thread_local std::mt19937_64 rng{std::random_device{}()};
                const auto delay = options.not_sent_delay.count();
                std::uniform_int_distribution<std::int64_t> jittered{delay, 2 * delay};
                return {loaded.version, now_ms() + jittered(rng)};
            }
        }
    }

    // Files the next wake-up; a process that got new events meanwhile is due at once. Only
    // while the lease is still this runner's: a runner that overran its lease leaves the
    // row to the one that took it over.
    void reschedule(const Claim& claim, std::int64_t version, std::optional<std::int64_t> wake_ms) {
        pool.transact([&](pqxx::work& txn) {
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
            } else if (wake_ms) {
                // As a delay from now on the database's clock, which decides when a row is
                // due: a runner whose clock is off neither spins on a row nor wakes it late.
                const auto delay_ms = std::max<std::int64_t>(0, *wake_ms - now_ms());
                txn.exec_params(
                    "UPDATE ordo.saga_schedule SET due_at = now() + make_interval(secs => "
                    "$2::float8 / 1000), leased_until = NULL WHERE stream_id = $1",
                    claim.stream, delay_ms);
            } else {
                txn.exec_params("DELETE FROM ordo.saga_schedule WHERE stream_id = $1",
                                claim.stream);
            }
        });
    }

    // Takes a process that failed out of the way for `delay`, so the others go on.
    void set_aside(const Claim& claim, std::chrono::seconds delay) {
        pool.transact([&](pqxx::work& txn) {
            txn.exec_params(
                "UPDATE ordo.saga_schedule SET due_at = now() + make_interval(secs => $3), "
                "leased_until = NULL WHERE stream_id = $1 AND leased_until = $2::timestamptz",
                claim.stream, claim.lease, static_cast<double>(delay.count()));
        });
    }

    std::size_t run_due() {
        auto claims = claim();
        for (auto& claim : claims) {
            try {
                auto [version, wake] = process(claim);
                reschedule(claim, version, wake);
            } catch (const std::exception& e) {
                const bool transient = platform::pg::classify(std::current_exception()) ==
                                       platform::FailureKind::transient;
                if (transient) {
                    log.warn("saga process failed; it will be tried again",
                             {{"stream", claim.stream}, {"error", e.what()}});
                    set_aside(claim, std::chrono::seconds(1));
                } else {
                    // A process that cannot be read or run needs an operator: it is parked
                    // and tried again hourly.
                    log.error("saga process cannot be run; parked",
                              {{"stream", claim.stream}, {"error", e.what()}});
                    parked.inc();
                    set_aside(claim, std::chrono::hours(1));
                }
            }
        }
        return claims.size();
    }

    void work(const std::atomic<bool>& stop) {
        auto backoff = std::chrono::milliseconds(100);
        while (!stop) {
            try {
                const auto seen = options.appends ? options.appends->seen() : 0;
                if (run_due() == 0) {
                    if (options.appends) {
                        options.appends->wait(seen, options.idle_poll);
                    } else {
                        std::this_thread::sleep_for(options.idle_poll);
                    }
                }
                backoff = std::chrono::milliseconds(100);
            } catch (const std::exception& e) {
                log.warn("saga runner pass failed; retrying",
                         {{"error", e.what()},
                          {"transient", platform::pg::classify(std::current_exception()) ==
                                            platform::FailureKind::transient}});
                for (auto waited = std::chrono::milliseconds(0); waited < backoff && !stop;
                     waited += std::chrono::milliseconds(20)) {
                    std::this_thread::sleep_for(std::chrono::milliseconds(20));
                }
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            }
        }
    }
};

Runner::Runner(RunnerOptions options, platform::pg::Pool& pool, CommandBus& bus,
               eventstore::AppendNotifier* notifier, const platform::Clock& clock,
               platform::Logger log, platform::metrics::Registry& metrics)
    : impl_{std::make_unique<Impl>(std::move(options), pool, bus, notifier, clock, std::move(log),
                                   metrics)} {}

Runner::~Runner() = default;

void Runner::run(const std::atomic<bool>& stop) {
    std::vector<std::thread> threads;
    for (int i = 0; i < impl_->options.workers; ++i) {
        threads.emplace_back([this, &stop] { impl_->work(stop); });
    }
    for (auto& t : threads) t.join();
}

std::size_t Runner::run_due() {
    return impl_->run_due();
}

}  // namespace ordo::sagas
