// The saga runner: workers claim due processes under a lease, send their steps' commands over the
// bus, and record the outcomes.

#include "sagas/runner.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include "domain/overloaded.hpp"
#include "eventstore/append_notifier.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/hops.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "sagas/process_stream.hpp"

namespace ordo::sagas {
namespace {

std::int64_t to_ms(platform::Clock::time_point t) {
    return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

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
    std::unique_ptr<eventstore::OneShard> one;  // when made on one store
    eventstore::Shards& shards;
    ProcessSchedule& schedule;
    CommandBus& bus;
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

    Impl(RunnerOptions o, std::unique_ptr<eventstore::OneShard> single, eventstore::Shards* sh,
         ProcessSchedule& sc, CommandBus& b, const platform::Clock& c, platform::Logger l,
         platform::metrics::Registry& m)
        : options{std::move(o)},
          one{std::move(single)},
          shards{one ? *one : *sh},
          schedule{sc},
          bus{b},
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

    // A claimed process, and when its lease was last taken or renewed.
    struct Held {
        Claim claim;
        std::chrono::steady_clock::time_point taken;
    };

    // Extends the lease once a third of it has passed, so a long process (many rounds, slow
    // commands) stays this runner's as long as no round takes two thirds of the lease;
    // false when another runner took it over meanwhile.
    bool keep_lease(Held& held) {
        const auto now = clock.steady_now();
        if (now - held.taken < options.lease / 3) return true;
        if (!schedule.renew(held.claim, options.lease)) return false;
        held.taken = now;
        return true;
    }

    // Folds the stream from committed history, a read of its own per page (no transaction:
    // a stream's events never change, so pages read apart fold the same). No stream lock:
    // the append's expected version catches a writer that got in between.
    LoadedProcess load(const std::string& stream) {
        return load_process(shards.of(stream), stream);
    }

    eventstore::Metadata metadata(const LoadedProcess& loaded, const std::string& causation) const {
        eventstore::Metadata m = loaded.origin;  // the trace whole: ids, flags, tracestate
        m.causation_id = causation;
        m.command_id.clear();
        m.actor = "saga";
        return m;
    }

    // Appends `events`, then `then`, at the loaded version in one append, and folds them into
    // `loaded`, so the next round needs no reload; false when another writer got there first.
    // `events` are caused by the process's last event, `then` by the last of `events` (what
    // was decided on them).
    bool append(const std::string& stream, LoadedProcess& loaded, const Events& events,
                const Events& then = {}) {
        std::vector<eventstore::NewEvent> batch;
        for (const auto& e : events) {
            batch.push_back({platform::new_uuid(), event_type(e), encode_payload(e),
                             metadata(loaded, loaded.last_event_id), domain::schema_version(e)});
        }
        const auto cause = batch.empty() ? loaded.last_event_id : batch.back().event_id;
        for (const auto& e : then) {
            batch.push_back({platform::new_uuid(), event_type(e), encode_payload(e),
                             metadata(loaded, cause), domain::schema_version(e)});
        }
        eventstore::AppendResult result;
        try {
            result = shards.of(stream).append(
                stream, eventstore::ExpectedVersion::exact(loaded.version), batch);
        } catch (const eventstore::ConcurrencyConflict&) {
            conflicts.inc();
            return false;
        }
        for (std::size_t i = 0; i < batch.size(); ++i) {
            const auto& e = i < events.size() ? events[i] : then[i - events.size()];
            loaded.apply(e, batch[i].event_id, batch[i].metadata,
                         result.first_version + static_cast<std::int64_t>(i));
        }
        return true;
    }

    // `fresh`: the process had decided nothing before these events.
    void count_outcome(ProcessKind kind, const LoadedProcess& process, const Events& events,
                       bool fresh) {
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
    Sent attempt(const std::string& stream, const LoadedProcess& loaded,
                 const std::vector<Step>& due) {
        thread_local std::mt19937_64 rng{std::random_device{}()};
        std::uniform_real_distribution<double> jitter{0.0, 1.0};
        auto send = [this, &stream, &loaded](const Step& step) -> domain::CommandOutcome {
            auto id = stream + "/" + step.name + "/" + std::to_string(step.attempts + 1);
            auto cause = metadata(loaded, loaded.scheduled_by.count(step.name)
                                              ? loaded.scheduled_by.at(step.name)
                                              : loaded.last_event_id);
            try {
                return bus.send(id, step.command, cause);
            } catch (const std::exception& e) {
                return domain::CommandFailed{e.what()};
            }
        };
        // Several steps due together (a reservation per line) go out in parallel; a lone
        // one, the usual case, is sent from this thread rather than from a new one.
        std::vector<std::future<domain::CommandOutcome>> sent;
        if (due.size() > 1) {
            for (const auto& step : due) {
                sent.push_back(std::async(std::launch::async, send, std::cref(step)));
            }
        }
        Sent result;
        for (std::size_t i = 0; i < due.size(); ++i) {
            auto outcome = sent.empty() ? send(due[i]) : sent[i].get();
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

    // Runs one process until nothing is due now; returns when it next needs attention
    // (nullopt: never, or it is not this runner's to say). Stops early if the lease was lost: the
    // process is another runner's then, and rescheduling it is too.
    std::optional<std::int64_t> process(Held& held) {
        const auto& stream = held.claim.stream;
        const auto id = parse_stream(stream);
        if (!id) throw platform::InvalidInput("not a process stream: " + stream);
        auto loaded = load(stream);
        for (int round = 0;; ++round) {
            if (round > 200) return now_ms() + 1000;  // let others run
            if (!keep_lease(held)) {
                lost_leases.inc();
                return std::nullopt;
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
            if (due.empty()) return next_wake_ms(loaded.state);
            // A resend after a conflict carries the same command ids: answered from the
            // command log, it changes nothing.
            auto sent = attempt(stream, loaded, due);
            // What the outcomes lead to (the next step, compensation, the end) is decided on
            // them at once and appended with them: one transaction per step, not two. A
            // runner that lost the process meanwhile records the outcomes it holds (the
            // commands were sent) but decides nothing more: that is the new holder's part.
            const bool held_still = keep_lease(held);
            Events decided;
            if (!sent.recorded.empty() && !sent.not_sent && held_still) {
                auto after = loaded.state;
                for (const auto& e : sent.recorded) after = evolve(std::move(after), e);
                decided = advance(id->kind, after, options.policy, now_ms());
            }
            if (!sent.recorded.empty() && !append(stream, loaded, sent.recorded, decided)) {
                loaded = load(stream);
            } else if (!sent.recorded.empty() && !sent.not_sent) {
                for (const auto& step : due) {
                    if (step.attempts == 0) recorded_hop.observe(seconds_since(step.scheduled_ms));
                }
                count_outcome(id->kind, loaded, decided, false);
            }
            if (!held_still) {
                lost_leases.inc();
                return std::nullopt;
            }
            if (sent.not_sent) {
                // Back off instead of sending again at once into an overloaded command side.
                thread_local std::mt19937_64 rng{std::random_device{}()};
                const auto delay = options.not_sent_delay.count();
                std::uniform_int_distribution<std::int64_t> jittered{delay, 2 * delay};
                return now_ms() + jittered(rng);
            }
        }
    }

    // Files the next wake-up as a delay from now: the schedule's clock decides when a
    // process is due, so a runner whose clock is off neither spins on it nor wakes it late.
    void reschedule(const Claim& claim, std::optional<std::int64_t> wake_ms) {
        std::optional<std::chrono::milliseconds> wake_in;
        if (wake_ms) wake_in = std::chrono::milliseconds{*wake_ms - now_ms()};
        schedule.reschedule(claim, wake_in);
    }

    // Claims up to `count` due processes in one round trip, their leases taken now.
    std::vector<Held> claim(std::size_t count) {
        auto claims = schedule.claim(count, options.lease);
        const auto claimed_at = clock.steady_now();
        std::vector<Held> held;
        held.reserve(claims.size());
        for (auto& claim : claims) held.push_back({std::move(claim), claimed_at});
        return held;
    }

    // Runs a claimed process and files its next wake-up. A process that fails is set aside
    // (or parked); throws only when the schedule fails to set it aside.
    void run_claim(Held& held) {
        // The queue's wait: from due to this start, a wait in the runner's hands included.
        queue_hop.observe(
            std::chrono::duration<double>(held.claim.overdue + (clock.steady_now() - held.taken))
                .count());
        try {
            reschedule(held.claim, process(held));
        } catch (const std::exception& e) {
            const bool transient = platform::pg::classify(std::current_exception()) ==
                                   platform::FailureKind::transient;
            if (transient) {
                log.warn("saga process failed; it will be tried again",
                         {{"stream", held.claim.stream}, {"error", e.what()}});
                schedule.set_aside(held.claim, std::chrono::seconds(1));
            } else {
                // A process that cannot be read or run needs an operator: it is parked and
                // tried again hourly.
                log.error("saga process cannot be run; parked",
                          {{"stream", held.claim.stream}, {"error", e.what()}});
                parked.inc();
                schedule.set_aside(held.claim, std::chrono::hours(1));
            }
        }
    }

    std::size_t run_due() {
        // Every lease of the batch was taken at once: a process that waits for the ones
        // before it is checked (and renewed) before it runs once a third of its lease passed.
        auto claims = claim(options.claim_batch);
        for (auto& held : claims) run_claim(held);
        return claims.size();
    }

    // What the workers have in hand: claimed processes waiting for a worker, and how many
    // workers are running one.
    struct Hand {
        std::mutex mutex;
        std::condition_variable changed;
        std::deque<Held> queued;
        std::size_t busy = 0;
        std::atomic<bool> closed{false};  // the dispatcher failed: the workers stop too
    };

    // The number of worker threads run() starts.
    std::size_t worker_count() const {
        return static_cast<std::size_t>(std::max(1, options.workers));
    }

    // Sleeps for `pause`, or less once `stop` is set.
    static void pause(std::chrono::milliseconds pause, const std::atomic<bool>& stop) {
        for (auto waited = std::chrono::milliseconds(0); waited < pause && !stop;
             waited += std::chrono::milliseconds(20)) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }

    // Claims for every worker of this runner: once the workers hold no more than one process
    // each (running or queued), it claims as many as fills their hands twice over, in one
    // round trip; so a burst costs a claim per `workers` processes, not one per process and
    // idle worker. When fewer were due than asked, it waits for an append (the intake
    // marking a process due) or the idle poll (retries and deadlines fall due by time).
    void dispatch(Hand& hand, const std::atomic<bool>& stop) {
        const auto workers = worker_count();
        auto backoff = std::chrono::milliseconds(100);
        while (!stop) {
            std::size_t want = 0;
            {
                std::unique_lock lock{hand.mutex};
                const bool room = hand.changed.wait_for(lock, options.idle_poll, [&] {
                    return stop || hand.queued.size() + hand.busy <= workers;
                });
                if (stop) break;
                if (!room) continue;
                want = 2 * workers - hand.queued.size() - hand.busy;
            }
            const auto seen = options.appends ? options.appends->seen() : 0;
            std::vector<Held> claims;
            try {
                claims = claim(want);
                backoff = std::chrono::milliseconds(100);
            } catch (const std::exception& e) {
                log.warn("saga runner could not claim; retrying",
                         {{"error", e.what()},
                          {"transient", platform::pg::classify(std::current_exception()) ==
                                            platform::FailureKind::transient}});
                pause(backoff, stop);
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
                continue;
            }
            if (!claims.empty()) {
                std::lock_guard lock{hand.mutex};
                for (auto& held : claims) hand.queued.push_back(std::move(held));
                hand.changed.notify_all();
            }
            if (claims.size() < want) {
                if (options.appends) {
                    options.appends->wait(seen, options.idle_poll);
                } else {
                    pause(options.idle_poll, stop);
                }
            }
        }
        hand.changed.notify_all();
    }

    // Runs the processes the dispatcher hands over until `stop` is set.
    void work(Hand& hand, const std::atomic<bool>& stop) {
        auto backoff = std::chrono::milliseconds(100);
        for (;;) {
            Held held;
            {
                std::unique_lock lock{hand.mutex};
                hand.changed.wait_for(lock, std::chrono::milliseconds(100),
                                      [&] { return stop || hand.closed || !hand.queued.empty(); });
                if (stop || hand.closed) return;
                if (hand.queued.empty()) continue;
                held = std::move(hand.queued.front());
                hand.queued.pop_front();
                ++hand.busy;
            }
            try {
                // A claim that waited long in the queue (the workers' processes ran long) is
                // renewed before it starts; one whose lease ran out meanwhile may be another
                // runner's now, and is let go without a word: it never started here.
                if (keep_lease(held)) run_claim(held);
                backoff = std::chrono::milliseconds(100);
            } catch (const std::exception& e) {
                // The schedule could not set the process aside: its lease runs out and it is
                // claimed again then.
                log.warn("saga runner pass failed; retrying",
                         {{"stream", held.claim.stream},
                          {"error", e.what()},
                          {"transient", platform::pg::classify(std::current_exception()) ==
                                            platform::FailureKind::transient}});
                pause(backoff, stop);
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            }
            {
                std::lock_guard lock{hand.mutex};
                --hand.busy;
            }
            hand.changed.notify_all();
        }
    }

    void run(const std::atomic<bool>& stop) {
        Hand hand;
        std::vector<std::thread> threads;
        for (std::size_t i = 0; i < worker_count(); ++i) {
            threads.emplace_back([this, &hand, &stop] { work(hand, stop); });
        }
        try {
            dispatch(hand, stop);
        } catch (...) {
            hand.closed = true;
            hand.changed.notify_all();
            for (auto& t : threads) t.join();
            throw;
        }
        for (auto& t : threads) t.join();
        // Claimed but not run: due again at once for whoever runs next, rather than after
        // their leases.
        for (const auto& held : hand.queued) {
            try {
                schedule.set_aside(held.claim, std::chrono::seconds(0));
            } catch (const std::exception& e) {
                log.warn("saga runner could not hand back a claimed process",
                         {{"stream", held.claim.stream}, {"error", e.what()}});
            }
        }
    }
};

Runner::Runner(RunnerOptions options, eventstore::Store& store, ProcessSchedule& schedule,
               CommandBus& bus, const platform::Clock& clock, platform::Logger log,
               platform::metrics::Registry& metrics)
    : impl_{std::make_unique<Impl>(std::move(options),
                                   std::make_unique<eventstore::OneShard>(store), nullptr, schedule,
                                   bus, clock, std::move(log), metrics)} {}

Runner::Runner(RunnerOptions options, eventstore::Shards& shards, ProcessSchedule& schedule,
               CommandBus& bus, const platform::Clock& clock, platform::Logger log,
               platform::metrics::Registry& metrics)
    : impl_{std::make_unique<Impl>(std::move(options), nullptr, &shards, schedule, bus, clock,
                                   std::move(log), metrics)} {}

Runner::~Runner() = default;

void Runner::run(const std::atomic<bool>& stop) {
    impl_->run(stop);
}

std::size_t Runner::run_due() {
    return impl_->run_due();
}

}  // namespace ordo::sagas
