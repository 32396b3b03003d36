// The projection runtime: its parts composed, and the loop that drives the owned slots.

#include "projections/runtime.hpp"

#include <algorithm>
#include <mutex>
#include <thread>

#include "eventstore/append_notifier.hpp"
#include "eventstore/shard_map.hpp"
#include "platform/core/metrics.hpp"
#include "projections/checkpointed_batch.hpp"
#include "projections/live_feed.hpp"
#include "projections/pg_slot_store.hpp"
#include "projections/projection_status.hpp"
#include "projections/sink_breakers.hpp"
#include "projections/slot.hpp"

namespace ordo::projections {
namespace {

// A batch of many statements (a read model writes a row per order line) may take far
// longer than one statement; past this the server is taken for gone (see pg::Pool).
constexpr std::chrono::milliseconds kBatchTimeout{60'000};

// A batch's transaction is cut past this (pg::Pool's operation bound).
std::chrono::milliseconds transaction_bound(const RuntimeOptions& options) {
    return std::max<std::chrono::milliseconds>(kBatchTimeout, 4 * options.statement_timeout);
}

std::vector<std::string> names_of(const std::vector<std::unique_ptr<Projection>>& projections) {
    std::vector<std::string> names;
    for (const auto& projection : projections) names.push_back(projection->name());
    return names;
}

}  // namespace

struct Runtime::Impl {
    RuntimeOptions options;
    std::vector<std::unique_ptr<Projection>> projections;
    std::vector<Projection*> projection_list;
    std::vector<std::string> projection_names;
    platform::Logger log;
    std::vector<Slot> slots;
    platform::SystemClock system_clock;
    const platform::Clock& clock;
    platform::metrics::Counter& retries;
    platform::metrics::Counter& sweeps;
    platform::metrics::Counter& shared_commits;
    platform::metrics::Counter& advanced;
    std::vector<std::function<void()>> committed_hooks;
    std::unique_ptr<SlotStore> own_store;  // PostgreSQL's, unless given
    std::unique_ptr<SlotLeasing> own_leases;
    SlotStore& store;
    SlotLeasing& leases;
    LiveFeed live;
    ProjectionStatus status;
    SinkBreakers breakers;
    CheckpointedBatch batches;
    // Over a sharded store, one listener per shard for its append notifications (the leases'
    // session listens on the read database, where no event is appended): the map's shards
    // from the start, a shard a move brought in from the first read of it. Last: destroyed,
    // and their threads stopped, before what they wake.
    std::mutex listeners_mutex;
    std::vector<std::unique_ptr<eventstore::AppendListener>> shard_listeners;

    void listen_to(const std::string& url, const eventstore::ShardLocation& shard) {
        try {
            auto listener = std::make_unique<eventstore::AppendListener>(
                eventstore::shard_url(url, shard),
                log.with_component("shard-" + std::to_string(shard.id) + "-appends"),
                eventstore::AppendNotifier::kChannel, [l = &leases] { l->appended_elsewhere(); });
            std::lock_guard lock{listeners_mutex};
            shard_listeners.push_back(std::move(listener));
        } catch (const std::exception& e) {
            // Its appends are then found by the poll (and JetStream), not as they happen.
            log.error("cannot listen to a shard's appends",
                      {{"shard", shard.id}, {"error", e.what()}});
        }
    }

    Impl(RuntimeOptions o, std::vector<std::unique_ptr<Projection>> p, platform::Logger l,
         platform::metrics::Registry& m, std::unique_ptr<SlotStore> owned_store,
         std::unique_ptr<SlotLeasing> owned_leases, SlotStore* given_store,
         SlotLeasing* given_leases)
        : options{std::move(o)},
          projections{std::move(p)},
          log{std::move(l)},
          clock{options.clock ? *options.clock : system_clock},
          retries{m.counter("ordo_projection_retries_total",
                            "Batches retried after a transient failure")},
          sweeps{m.counter("ordo_projection_sweeps_total",
                           "Looks at every owned partition in the store (see "
                           "RuntimeOptions::sweep_interval)",
                           {{"runtime", options.group}})},
          shared_commits{m.counter("ordo_projection_shared_commits_total",
                                   "Transactions that committed the live events of several "
                                   "slots together",
                                   {{"runtime", options.group}})},
          advanced{m.counter("ordo_projection_checkpoints_advanced_total",
                             "Idle slots' checkpoints moved up to the head by a sweep's survey, "
                             "without a step of their own",
                             {{"runtime", options.group}})},
          own_store{std::move(owned_store)},
          own_leases{std::move(owned_leases)},
          store{given_store ? *given_store : *own_store},
          leases{given_leases ? *given_leases : *own_leases},
          live{{.nats = options.nats,
                .stream = options.stream,
                .subject_prefix = options.subject_prefix,
                .partitions = options.partitions,
                .buffer_bytes = options.live_buffer_bytes,
                .group = options.group},
               [this] { leases.live_event(); },
               log,
               m},
          status{store, options.instance, options.status_interval, clock, log, m},
          breakers{names_of(projections),
                   options.breaker,
                   options.breaker_store,
                   options.instance,
                   clock,
                   log,
                   m,
                   [this] { status.soon(); }},
          batches{store, live, log, m} {
        for (auto& projection : projections) {
            projection_list.push_back(projection.get());
            projection_names.push_back(projection->name());
            const auto batch = batch_for(*projection, options.batch, transaction_bound(options));
            for (int p = 0; p < options.partitions; ++p) {
                slots.push_back({projection.get(), p, batch});
            }
        }
    }

    DeadLetterPolicy policy_of(const std::string& projection) const {
        auto it = options.dead_letter_policies.find(projection);
        return it == options.dead_letter_policies.end() ? options.default_dead_letter_policy
                                                        : it->second;
    }

    // One step of a slot; once it has committed, tells the hooks if it applied events.
    std::size_t step(Slot& slot) {
        const auto applied = batches.apply_next(slot);
        if (applied > 0) {
            for (const auto& hook : committed_hooks) hook();
        }
        return applied;
    }

    // Settles the slot's open dead letters when they are due a look (Slot::settle_pending);
    // true when one halts the slot.
    bool settle(Slot& s) {
        if (!s.halted_on && !s.settle_pending) return false;
        const bool halted = batches.settle(s);
        s.settle_pending = false;
        return halted;
    }

    // One attempt at a slot, behind its projection's breaker. While the breaker is open the
    // slot is not touched: it stays at its checkpoint. False when the breaker refused.
    bool attempt(Slot& s) {
        auto& breaker = breakers.of(s.projection->name());
        if (!breaker.allow()) return false;
        const auto started = clock.steady_now();
        const bool probing = breaker.state() == platform::BreakerState::half_open;
        try {
            std::size_t applied = 0;
            if (!settle(s)) applied = step(s);
            if (applied > 0) s.poison = 0;
            // A step with nothing to apply never reached the read model: while closed it says
            // nothing about the sink, or idle partitions would mask a failing one. As a probe
            // it does show the database answers again.
            breaker.record(applied > 0 || probing ? platform::CallOutcome::success
                                                  : platform::CallOutcome::ignored,
                           clock.steady_now() - started);
            return true;
        } catch (const std::exception&) {
            if (store.classify(std::current_exception()) == platform::FailureKind::transient) {
                breaker.record(platform::CallOutcome::failure, clock.steady_now() - started);
                throw;
            }
        }
        // A permanent failure: some event of the batch cannot be applied.
        try {
            batches.isolate(s, policy_of(s.projection->name()));
            s.settle_pending = true;  // what it parked is looked at on the next visit
            breaker.record(platform::CallOutcome::success, clock.steady_now() - started);
            return true;
        } catch (const std::exception&) {
            breaker.record(platform::outcome_of(store.classify(std::current_exception())),
                           clock.steady_now() - started);
            throw;
        }
    }

    // One look at a slot, its failure kept to it: the slot pauses at its checkpoint and is
    // retried with a growing pause, the others go on. False when the slot was not looked at
    // (its breaker is open).
    bool visit(Slot& s, std::chrono::steady_clock::time_point now) {
        try {
            if (!attempt(s)) return false;  // breaker open: paused at the checkpoint
            s.failures = 0;
        } catch (const std::exception& e) {
            const auto kind = store.classify(std::current_exception());
            retries.inc();
            s.failures = std::min(s.failures + 1, 8);
            s.retry_at = now + std::chrono::milliseconds(100 << s.failures);
            s.idle = false;  // stepped again from its retry time on (run() wakes for it)
            log.warn("projection batch failed; the partition waits at its checkpoint",
                     {{"projection", s.projection->name()},
                      {"partition", s.partition},
                      {"error", e.what()},
                      {"transient", kind == platform::FailureKind::transient}});
            if (!leases.connected()) throw;
        }
        return true;
    }

    // Slots with live events: those with nothing unusual about them (breaker closed, no
    // dead letters due a look, no slow sink) go together in one transaction, a batch's worth
    // of events in all; the rest, and all of them if that transaction fails, one at a time
    // with their own retries and poison isolation. True when some slot has more to do.
    bool visit_live(const std::vector<Slot*>& live_slots,
                    std::chrono::steady_clock::time_point now) {
        std::vector<Slot*> together;
        std::vector<Slot*> alone;
        for (Slot* s : live_slots) {
            const bool plain =
                breakers.of(s->projection->name()).state() == platform::BreakerState::closed &&
                !s->halted_on && !s->settle_pending && s->poison == 0 &&
                s->projection->worst_apply() == std::chrono::milliseconds{0};
            (plain ? together : alone).push_back(s);
        }
        bool busy = false;
        if (together.size() > 1) {
            const auto started = clock.steady_now();
            try {
                const auto applied = batches.apply_live(together, options.batch);
                const auto elapsed = clock.steady_now() - started;
                shared_commits.inc();
                bool any = false;
                for (std::size_t i = 0; i < together.size(); ++i) {
                    Slot& s = *together[i];
                    if (applied[i] == CheckpointedBatch::kNotLive) {
                        alone.push_back(&s);
                        continue;
                    }
                    breakers.of(s.projection->name())
                        .record(applied[i] > 0 ? platform::CallOutcome::success
                                               : platform::CallOutcome::ignored,
                                elapsed);
                    s.failures = 0;
                    if (applied[i] > 0) s.poison = 0;
                    any = any || applied[i] > 0;
                    busy = busy || !s.idle;
                }
                if (any) {
                    for (const auto& hook : committed_hooks) hook();
                }
            } catch (const std::exception&) {
                // Nothing of it committed: each slot again alone, where a failure is its own.
                alone.insert(alone.end(), together.begin(), together.end());
            }
        } else {
            alone.insert(alone.end(), together.begin(), together.end());
        }
        for (Slot* s : alone) {
            if (visit(*s, now)) busy = busy || !s->idle;
        }
        return busy;
    }

    // The look at every owned slot in the store: for events no live run brought (the relay
    // is behind or down, the live buffer was full, a gap), for operators' dead-letter
    // requests, and to move idle partitions' checkpoints up to the head. Started by an append
    // notification, the poll interval, a new session. It begins with a survey (one
    // transaction of a few statements, whatever the slot count: sweep_plan.hpp) that moves
    // the checkpoints of slots with nothing new up to the head together and names the slots
    // to step; those are stepped a slot at a time, giving way to live events between slots,
    // so that what just happened never waits for the idle partitions.
    struct Sweep {
        bool pending = true;
        // The slots the survey left to step, from `next`; nullopt: not surveyed yet.
        std::optional<std::vector<std::size_t>> visits;
        std::size_t next = 0;
        // Asked for again while under way: the slots already passed may have missed it.
        bool again = false;
        std::chrono::steady_clock::time_point not_before{};
    };

    // The survey's look at the store: at most this many events after the lowest idle
    // checkpoint; with more than that, every slot is stepped (a backlog, not an idle store).
    static constexpr std::size_t kSurveyLimit = 5000;

    // The survey that starts a sweep: the slots to step, the others moved up to the head or
    // passed over.
    std::vector<std::size_t> survey(std::chrono::steady_clock::time_point now) {
        SweepPlan plan;
        std::set<std::pair<std::string, int>> moved;
        std::vector<CheckpointRow> rows;
        store.transact([&](SlotTxn& txn) {
            moved.clear();
            rows = txn.checkpoints(projection_names);
            const auto requested = txn.requested_letters();
            for (auto& s : slots) {
                if (s.owned && requested.count({s.projection->name(), s.partition}) > 0) {
                    s.settle_pending = true;
                }
            }
            std::map<ShardKey, Changes> changes;
            for (const auto& [shard, after] : survey_points(slots, rows)) {
                try {
                    changes[shard] = txn.changes_after(shard, after, kSurveyLimit);
                } catch (const std::exception& e) {
                    // A shard that cannot be read, whatever the reason: its slots are
                    // stepped, each failing and backing off on its own, and the other
                    // shards' go on. Without shards the events are in this transaction's
                    // database, which then failed too.
                    if (!shard) throw;
                    log.warn("a shard's changes could not be surveyed; its slots are stepped",
                             {{"shard", *shard}, {"error", e.what()}});
                    changes[shard] = Changes{.complete = false};
                }
            }
            plan = plan_sweep(slots, rows, changes, now, breakers_not_closed());
            for (const auto& [shard, head] : plan.heads) {
                std::vector<CheckpointRow> from;
                for (auto i : plan.advance) {
                    const auto& s = slots[i];
                    if (s.shard == shard) {
                        from.push_back({s.projection->name(), s.partition, s.at, s.shard});
                    }
                }
                auto done = txn.advance(shard, head, from);
                moved.insert(done.begin(), done.end());
            }
        });
        for (auto i : plan.advance) {
            auto& s = slots[i];
            if (moved.count({s.projection->name(), s.partition}) > 0) s.at = plan.heads[s.shard];
        }
        advanced.inc(static_cast<double>(moved.size()));
        return plan.visit;
    }

    // The projections whose breaker is open or probing: their slots are visited, where the
    // breaker decides (refused: left at the checkpoint; a probe: a step), never advanced.
    std::set<std::string> breakers_not_closed() {
        std::set<std::string> out;
        for (const auto& name : projection_names) {
            if (breakers.of(name).state() != platform::BreakerState::closed) out.insert(name);
        }
        return out;
    }

    // The survey, or every owned slot when it fails for a reason that will not pass (a
    // transient failure is the database's: it propagates, and run() backs off). A slot that
    // cannot be stepped then fails on its own, and the others go on.
    std::vector<std::size_t> survey_or_all(std::chrono::steady_clock::time_point now) {
        try {
            return survey(now);
        } catch (const std::exception& e) {
            if (store.classify(std::current_exception()) == platform::FailureKind::transient) {
                throw;
            }
            log.error("the sweep's survey failed; stepping every owned slot",
                      {{"error", e.what()}});
            std::vector<std::size_t> all;
            for (std::size_t i = 0; i < slots.size(); ++i) {
                if (slots[i].owned) all.push_back(i);
            }
            return all;
        }
    }

    // One pass: slots with live events or still catching up, then the sweep, if due, until
    // it ends or a live event comes. True when there is more to do at once.
    bool pass(const std::atomic<bool>& stop, Sweep& sweep) {
        if (leases.appended.exchange(false)) {
            (sweep.pending && sweep.visits ? sweep.again : sweep.pending) = true;
        }
        leases.woken = false;  // a live event from here on is seen below or wakes the next pass
        const auto now = std::chrono::steady_clock::now();
        bool busy = false;
        // Live events first, then partitions still catching up (a batch each).
        std::vector<Slot*> live_slots;
        std::vector<Slot*> catching_up;
        for (auto& s : slots) {
            if (!s.owned) s.settle_pending = true;  // owned again, it looks at its letters first
            if (!s.owned || stop || now < s.retry_at) continue;
            if (!live.has_after(s.partition, s.at)) {
                if (!s.idle) catching_up.push_back(&s);
                continue;
            }
            live_slots.push_back(&s);
        }
        busy = visit_live(live_slots, now) || busy;
        for (Slot* s : catching_up) {
            if (!stop && visit(*s, now)) busy = busy || !s->idle;
        }
        if (!sweep.pending || now < sweep.not_before || stop) return busy;
        if (!sweep.visits) {
            leases.probe_horizon();  // before the look, never after (SlotLeasing::probe_horizon)
            sweep.visits = survey_or_all(now);
        }
        // At least one slot per pass, so that a steady flow of live events slows the sweep
        // down but cannot stop it.
        const auto& visits = *sweep.visits;
        bool progressed = false;
        while (sweep.next < visits.size() && !stop && !(progressed && leases.woken)) {
            auto& s = slots[visits[sweep.next++]];
            if (!s.owned || now < s.retry_at) continue;
            if (visit(s, now)) busy = busy || !s.idle;
            progressed = true;
        }
        if (sweep.next < visits.size()) return true;  // a live event came: back after it
        sweeps.inc();
        // From the sweep's end: a sweep that takes longer than the interval must not start
        // the next one at once.
        sweep = {
            .pending = sweep.again,
            .visits = std::nullopt,
            .next = 0,
            .again = false,
            .not_before = std::chrono::steady_clock::now() +
                          (live.enabled() ? options.sweep_interval : std::chrono::milliseconds{0})};
        return busy;
    }

    void run(const std::atomic<bool>& stop) {
        auto backoff = std::chrono::milliseconds(100);
        auto next_balance = std::chrono::steady_clock::now();
        Sweep sweep;
        while (!stop) {
            try {
                if (!leases.connected()) {
                    leases.connect(slots);
                    sweep = {};
                }
                if (std::chrono::steady_clock::now() >= next_balance) {
                    leases.balance(slots);
                    if (live.enabled()) live.subscribe();
                    next_balance = std::chrono::steady_clock::now() + std::chrono::seconds(1);
                }
                const bool busy = pass(stop, sweep);
                backoff = std::chrono::milliseconds(100);
                live.trim(slots);
                status.write_if_due(projection_list, slots, breakers);
                if (!busy && !leases.woken) {
                    auto until = sweep.pending ? sweep.not_before
                                               : std::chrono::steady_clock::time_point::max();
                    // A slot that failed is stepped again at its retry time, whatever the poll.
                    // Only a time still to come: a slot whose breaker refuses it stays failed
                    // with its retry time past, and must not turn this wait into a spin.
                    const auto now = std::chrono::steady_clock::now();
                    for (const auto& s : slots) {
                        if (s.owned && s.failures > 0 && s.retry_at > now)
                            until = std::min(until, s.retry_at);
                    }
                    if (leases.wait_for_events(stop, until)) sweep.pending = true;
                }
            } catch (const std::exception& e) {
                auto kind = store.classify(std::current_exception());
                retries.inc();
                log.warn(
                    "projection step failed; retrying",
                    {{"error", e.what()}, {"transient", kind == platform::FailureKind::transient}});
                leases.drop_if_broken();
                sleep_unless_stopped(stop, backoff);
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            }
        }
    }

    static void sleep_unless_stopped(const std::atomic<bool>& stop, std::chrono::milliseconds d) {
        auto deadline = std::chrono::steady_clock::now() + d;
        while (!stop && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
};

Runtime::Runtime(RuntimeOptions options, std::vector<std::unique_ptr<Projection>> projections,
                 platform::Logger log, platform::metrics::Registry& metrics) {
    auto store = std::make_unique<PgSlotStore>(
        PgSlotStoreOptions{.database_url = options.database_url,
                           .partitions = options.partitions,
                           .instance = options.instance,
                           .statement_timeout = options.statement_timeout,
                           .transaction_bound = transaction_bound(options),
                           .shards = options.shards},
        metrics);
    // Over shards the events are appended, and hidden by a horizon, on the shards: the wait
    // asks them (the store lives as long as the leases, in Impl).
    std::function<bool()> hidden_elsewhere;
    if (options.shards && options.shards->version() > 0)
        hidden_elsewhere = [events = store.get()] { return events->hidden_on_shards(); };
    auto leases = std::make_unique<SlotLeases>(
        SlotLeaseOptions{.database_url = options.database_url,
                         .instance = options.instance,
                         .group = options.group,
                         .instance_ttl = options.instance_ttl,
                         .poll_interval = options.poll_interval,
                         .hidden_elsewhere = std::move(hidden_elsewhere)});
    if (options.upcasters) projections = upcasting(std::move(projections), *options.upcasters);
    const auto shards = options.shards;
    const auto url = options.database_url;
    auto* events = store.get();
    impl_ = std::make_unique<Impl>(std::move(options), std::move(projections), std::move(log),
                                   metrics, std::move(store), std::move(leases), nullptr, nullptr);
    if (shards && shards->version() > 0) {
        for (const auto& shard : shards->shards()) impl_->listen_to(url, shard);
        events->on_new_shard(
            [impl = impl_.get(), url](const auto& shard) { impl->listen_to(url, shard); });
    }
}

Runtime::Runtime(RuntimeOptions options, std::vector<std::unique_ptr<Projection>> projections,
                 platform::Logger log, platform::metrics::Registry& metrics, SlotStore& store,
                 SlotLeasing& leases) {
    if (options.upcasters) projections = upcasting(std::move(projections), *options.upcasters);
    impl_ = std::make_unique<Impl>(std::move(options), std::move(projections), std::move(log),
                                   metrics, nullptr, nullptr, &store, &leases);
}

Runtime::~Runtime() = default;

void Runtime::on_batch_committed(std::function<void()> hook) {
    impl_->committed_hooks.push_back(std::move(hook));
}

void Runtime::run(const std::atomic<bool>& stop) {
    impl_->run(stop);
}

std::size_t Runtime::owned_slots() const {
    return impl_->leases.owned();
}

std::size_t batch_for(const Projection& projection, std::size_t batch,
                      std::chrono::milliseconds bound) {
    const auto worst = projection.worst_apply();
    if (worst.count() <= 0) return std::max<std::size_t>(batch, 1);
    const auto fits = static_cast<std::size_t>((bound / 2) / worst);
    return std::clamp<std::size_t>(fits, 1, std::max<std::size_t>(batch, 1));
}

}  // namespace ordo::projections
