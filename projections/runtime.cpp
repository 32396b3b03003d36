#include "projections/runtime.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/jetstream.hpp"
#include "platform/metrics.hpp"
#include "platform/partition.hpp"
#include "platform/pg.hpp"
#include "platform/shared_breaker.hpp"
#include "projections/live_path.hpp"

namespace ordo::projections {
namespace {

using eventstore::Checkpoint;

struct Slot {
    Projection* projection;
    int partition;
    std::size_t batch;  // events per transaction (batch_for)
    bool owned = false;
    bool idle = false;  // caught up at the last look
    int failures = 0;   // consecutive
    std::chrono::steady_clock::time_point retry_at{};
    std::optional<std::int64_t> halted_on;  // the dead letter a halted partition waits at
    // Events that failed for good in a row, across batches: with little traffic a batch
    // holds one event, so a sink that fails on every event shows only over several.
    std::size_t poison = 0;
    Checkpoint at{};  // as of its last save: tells which slots have live events waiting
};

// A projection's sink behind its breaker, shared with the fleet when a store is given.
struct Sink {
    std::unique_ptr<platform::CircuitBreaker> local;
    std::unique_ptr<platform::SharedBreaker> breaker;
};

constexpr std::size_t kMaxErrorLength = 4000;
// More poison events than this in a row, with no event applied between them, means the sink
// is failing, not the events.
constexpr std::size_t kMaxPoisonInARow = 3;
// A batch of many statements (a read model writes a row per order line) may take far
// longer than one statement; past this the server is taken for gone (see pg::Pool).
constexpr std::chrono::milliseconds kBatchTimeout{60'000};
// Lag is counted up to this many events per partition: enough to tell "far behind".
constexpr std::int64_t kMaxLagCount = 100'000;

// A batch's transaction is cut past this (pg::Pool's operation bound).
std::chrono::milliseconds transaction_bound(const RuntimeOptions& options) {
    return std::max<std::chrono::milliseconds>(kBatchTimeout, 4 * options.statement_timeout);
}

std::string clipped(std::string text) {
    if (text.size() > kMaxErrorLength) text.resize(kMaxErrorLength);
    return text;
}

bool handles(const Projection& projection, const eventstore::RecordedEvent& event) {
    const auto categories = projection.categories();
    return categories.empty() ||
           std::find(categories.begin(), categories.end(), event.category) != categories.end();
}

std::string pg_array(const std::vector<std::string>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) out += (i ? "," : "") + items[i];
    return out + "}";
}

// The live events of one partition, shared by the projections on it: filled by its
// JetStream consumer's thread, read and trimmed by the runtime's.
struct PartitionBuffer {
    explicit PartitionBuffer(std::size_t max_bytes) : events{max_bytes} {}
    std::mutex mutex;
    LiveBuffer events;
};

}  // namespace

struct Runtime::Impl {
    RuntimeOptions options;
    std::vector<std::unique_ptr<Projection>> projections;
    platform::Logger log;
    platform::metrics::Registry& metrics;
    std::vector<Slot> slots;
    std::unique_ptr<platform::pg::Pool> pool;
    std::unique_ptr<pqxx::connection> session;  // holds the advisory locks, listens
    std::unique_ptr<pqxx::notification_receiver> listener;
    std::atomic<std::size_t> owned{0};
    std::atomic<bool> woken{false};
    eventstore::HorizonWait horizon_wait{options.poll_interval};
    platform::metrics::Counter& applied_store;
    platform::metrics::Counter& applied_live;
    platform::metrics::Counter& retries;
    std::vector<std::unique_ptr<PartitionBuffer>> live;
    platform::metrics::Gauge& live_bytes;
    platform::metrics::Counter& live_refused;
    std::unique_ptr<platform::jetstream::Client> nats;
    std::vector<std::unique_ptr<platform::jetstream::Client::Subscription>> subscriptions;
    bool live_warned = false;
    platform::SystemClock system_clock;
    const platform::Clock& clock;
    std::mt19937_64 random_engine{std::random_device{}()};
    std::uniform_real_distribution<double> uniform{0.0, 1.0};
    std::map<std::string, Sink> sinks;  // by projection
    platform::metrics::Counter& dead_lettered;
    std::chrono::steady_clock::time_point next_status{};
    bool status_warned = false;

    Impl(RuntimeOptions o, std::vector<std::unique_ptr<Projection>> p, platform::Logger l,
         platform::metrics::Registry& m)
        : options{std::move(o)},
          projections{std::move(p)},
          log{std::move(l)},
          metrics{m},
          applied_store{m.counter("ordo_projection_events_applied_total",
                                  "Events applied to read models", {{"source", "store"}})},
          applied_live{m.counter("ordo_projection_events_applied_total",
                                 "Events applied to read models", {{"source", "live"}})},
          retries{m.counter("ordo_projection_retries_total",
                            "Batches retried after a transient failure")},
          live_bytes{m.gauge("ordo_projection_live_buffer_bytes",
                             "Bytes of live JetStream events buffered, not yet applied by every "
                             "projection of their partition",
                             {{"runtime", options.group}})},
          live_refused{m.counter("ordo_projection_live_refused_total",
                                 "Live events not buffered because the buffer was full (the "
                                 "store carries them instead)",
                                 {{"runtime", options.group}})},
          clock{options.clock ? *options.clock : system_clock},
          dead_lettered{m.counter("ordo_projection_dead_letters_total",
                                  "Poison events parked in ordo.dead_letters")} {
        for (auto& projection : projections) {
            const auto batch = batch_for(*projection, options.batch, transaction_bound(options));
            for (int p = 0; p < options.partitions; ++p) {
                slots.push_back({projection.get(), p, batch});
            }
            add_sink(projection->name());
        }
        // Read-model rows and the checkpoint commit together, so a commit lost in a crash
        // is simply applied again: no need to wait for each one to reach the disk.
        auto relaxed_commit = [](pqxx::connection& c) {
            pqxx::nontransaction tx{c};
            tx.exec("SET synchronous_commit = off");
        };
        pool = std::make_unique<platform::pg::Pool>(platform::pg::PoolOptions{
            .url = options.database_url,
            .size = 2,
            .statement_timeout = options.statement_timeout,
            .name = "projector",
            .preparers = {relaxed_commit, &eventstore::EventStore::prepare},
            .operation_timeout = transaction_bound(options)});
        pool->register_metrics(m);
        const auto per_partition =
            options.live_buffer_bytes / static_cast<std::size_t>(std::max(options.partitions, 1));
        for (int p = 0; p < options.partitions; ++p) {
            live.push_back(std::make_unique<PartitionBuffer>(per_partition));
        }
        m.gauge("ordo_projection_live_buffer_limit_bytes",
                "Bound on the bytes of live events buffered (all partitions)",
                {{"runtime", options.group}})
            .set(static_cast<double>(per_partition * live.size()));
    }

    ~Impl() {
        subscriptions.clear();  // before the buffers they feed
    }

    void add_sink(const std::string& name) {
        auto& state = metrics.gauge("ordo_breaker_state",
                                    "Circuit breaker state: 0 closed, 1 open, 2 half-open",
                                    {{"breaker", name}});
        Sink sink;
        sink.local = std::make_unique<platform::CircuitBreaker>(
            name, options.breaker, clock, [this] { return uniform(random_engine); },
            [this, &state](const platform::BreakerTransition& t) {
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
                next_status = {};  // show it in the admin view at once
            });
        auto& probes = metrics.counter("ordo_breaker_probes_total",
                                       "Calls this instance let through a half-open breaker",
                                       {{"breaker", name}});
        sink.breaker = std::make_unique<platform::SharedBreaker>(
            *sink.local, options.breaker_store, platform::breaker_key("projection." + name),
            options.instance, clock, log.with_component("breaker"), std::chrono::milliseconds{250},
            [&probes] { probes.inc(); });
        sinks.emplace(name, std::move(sink));
    }

    DeadLetterPolicy policy_of(const std::string& projection) const {
        auto it = options.dead_letter_policies.find(projection);
        return it == options.dead_letter_policies.end() ? options.default_dead_letter_policy
                                                        : it->second;
    }

    // Subscribes the partitions that have no live consumer yet. A stream that does not
    // exist yet (no relay has run) is retried at the next balance; meanwhile the store
    // carries everything.
    void subscribe_live() {
        if (!nats) {
            nats = std::make_unique<platform::jetstream::Client>(
                options.nats, log.with_component("nats"), &metrics);
            subscriptions.resize(static_cast<std::size_t>(options.partitions));
        }
        // Older events are in the store; the live path only has to carry what comes next.
        auto since = std::chrono::system_clock::now() - std::chrono::seconds(10);
        for (int p = 0; p < options.partitions; ++p) {
            auto& subscription = subscriptions[static_cast<std::size_t>(p)];
            if (subscription) continue;
            auto* buffer = live[static_cast<std::size_t>(p)].get();
            try {
                subscription = nats->subscribe_ordered(
                    options.stream, options.subject_prefix + "." + std::to_string(p) + ".>", since,
                    [this, buffer](platform::jetstream::Message m) {
                        auto decoded = eventstore::decode_wire(options.subject_prefix, m.subject,
                                                               m.headers, m.data);
                        auto* event = std::get_if<eventstore::PublishedEvent>(&decoded);
                        if (!event) return;
                        bool kept = false;
                        {
                            std::lock_guard lock{buffer->mutex};
                            const auto before = buffer->events.bytes();
                            kept = buffer->events.push(std::move(*event));
                            live_bytes.add(static_cast<double>(buffer->events.bytes() - before));
                        }
                        if (!kept) live_refused.inc();
                        woken = true;
                    });
            } catch (const std::exception& e) {
                if (!live_warned) {
                    log.warn("no live JetStream subscription yet; reading the store meanwhile",
                             {{"partition", p}, {"error", e.what()}});
                    live_warned = true;
                }
                return;
            }
        }
    }

    // The live events that continue `at` without a gap, up to a batch.
    std::vector<eventstore::RecordedEvent> live_run(int partition, Checkpoint at, std::size_t batch,
                                                    bool& rest_empty) {
        auto& buffer = *live[static_cast<std::size_t>(partition)];
        std::lock_guard lock{buffer.mutex};
        auto run = buffer.events.run(at, partition, options.partitions, batch);
        rest_empty = run.rest_empty;
        return std::move(run.events);
    }

    // Forgets the live events that every owned slot of their partition has applied; a
    // partition with no owned slot needs none (a slot taken later starts from the store).
    void trim_live() {
        std::vector<std::optional<Checkpoint>> applied(live.size());
        std::vector<bool> owned_any(live.size(), false);
        for (const auto& s : slots) {
            if (!s.owned) continue;
            const auto p = static_cast<std::size_t>(s.partition);
            owned_any[p] = true;
            if (!applied[p] || s.at < *applied[p]) applied[p] = s.at;
        }
        for (std::size_t p = 0; p < live.size(); ++p) {
            auto& buffer = *live[p];
            std::lock_guard lock{buffer.mutex};
            const auto before = buffer.events.bytes();
            if (!owned_any[p]) {
                buffer.events.clear();
            } else {
                buffer.events.trim(*applied[p]);
            }
            live_bytes.add(-static_cast<double>(before - buffer.events.bytes()));
        }
    }

    struct Listener final : pqxx::notification_receiver {
        Listener(pqxx::connection& c, std::atomic<bool>& flag)
            : notification_receiver{c, eventstore::AppendNotifier::kChannel}, woken{flag} {}
        void operator()(const std::string&, int) override { woken = true; }
        std::atomic<bool>& woken;
    };

    void connect_session() {
        listener.reset();
        session = std::make_unique<pqxx::connection>(platform::pg::connection_url(
            options.database_url, "ordo-" + options.group + "-session"));
        listener = std::make_unique<Listener>(*session, woken);
        for (auto& s : slots) s.owned = false;
        owned = 0;
    }

    // Heartbeat, then take or give back slots until this instance holds its fair share.
    void balance() {
        pqxx::nontransaction tx{*session};
        auto live = tx.exec_params1(
                          "WITH beat AS (INSERT INTO ordo.projector_instances (instance, "
                          "heartbeat_at, runtime_group) VALUES ($1, now(), $3) ON CONFLICT "
                          "(instance) DO UPDATE SET heartbeat_at = now()) SELECT count(*) + 1 "
                          "FROM ordo.projector_instances WHERE heartbeat_at > now() - "
                          "make_interval(secs => $2) AND instance <> $1 AND runtime_group = $3",
                          options.instance, static_cast<double>(options.instance_ttl.count()),
                          options.group)[0]
                        .as<std::size_t>();
        std::size_t fair = (slots.size() + live - 1) / live;
        std::size_t held = owned;
        // Start the search at a place that differs per instance, so instances do not all
        // contend for the same slots first.
        std::size_t start = platform::stream_hash(options.instance) % slots.size();
        for (std::size_t i = 0; i < slots.size() && held < fair; ++i) {
            auto& s = slots[(start + i) % slots.size()];
            if (s.owned) continue;
            if (tx.exec_params1("SELECT pg_try_advisory_lock($1, $2)",
                                slot_lock_key(s.projection->name()), s.partition)[0]
                    .as<bool>()) {
                s.owned = true;
                ++held;
                s.idle = false;
            }
        }
        for (std::size_t i = 0; i < slots.size() && held > fair; ++i) {
            auto& s = slots[(start + slots.size() - 1 - i) % slots.size()];
            if (!s.owned) continue;
            tx.exec_params("SELECT pg_advisory_unlock($1, $2)", slot_lock_key(s.projection->name()),
                           s.partition);
            s.owned = false;
            --held;
        }
        owned = held;
    }

    // One step of a slot; once it has committed, tells the notifier if it applied events.
    std::size_t step(Slot& slot) {
        const auto applied = apply_next(slot);
        if (applied > 0 && options.notifier) options.notifier->signal();
        return applied;
    }

    // Applies the next batch of the slot's partition, or, when there is none, moves its
    // checkpoint up to the head of the log below the horizon so that consistency tokens
    // see an idle partition as caught up. Returns events applied.
    std::size_t apply_next(Slot& slot) {
        return pool->transact([&](pqxx::work& txn) -> std::size_t {
            // The checkpoint row, locked: a batch commits only over the checkpoint it read,
            // so an instance that lost the slot mid-batch cannot apply it a second time.
            const Checkpoint at = lock_checkpoint(txn, slot);
            slot.at = at;
            bool live_drained = false;
            auto run = live_run(slot.partition, at, slot.batch, live_drained);
            if (!run.empty()) {
                const auto categories = slot.projection->categories();
                for (const auto& event : run) {
                    if (categories.empty() || std::find(categories.begin(), categories.end(),
                                                        event.category) != categories.end()) {
                        slot.projection->apply(txn, event);
                    }
                }
                save(txn, slot, run.back().checkpoint(), run.back().recorded_at);
                slot.idle = live_drained;
                applied_live.inc(static_cast<double>(run.size()));
                return run.size();
            }
            auto head = eventstore::EventStore::head(txn);
            auto rows =
                eventstore::EventStore::read_partition(txn, at, options.partitions, slot.partition,
                                                       slot.projection->categories(), slot.batch);
            Checkpoint next = at;
            std::string last_event_at;
            for (const auto& event : rows) {
                slot.projection->apply(txn, event);
                next = event.checkpoint();
                last_event_at = event.recorded_at;
            }
            if (rows.size() < slot.batch && head && *head > next) next = *head;
            slot.idle = rows.size() < slot.batch;
            if (next == at) return 0;
            save(txn, slot, next, last_event_at);
            applied_store.inc(static_cast<double>(rows.size()));
            return rows.size();
        });
    }

    Checkpoint lock_checkpoint(pqxx::transaction_base& txn, const Slot& slot) {
        const auto name = slot.projection->name();
        txn.exec_params(
            "INSERT INTO ordo.projection_checkpoints (projection, partition) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            name, slot.partition);
        auto row = txn.exec_params1(
            "SELECT transaction_id::text, global_position FROM ordo.projection_checkpoints "
            "WHERE projection = $1 AND partition = $2 FOR UPDATE",
            name, slot.partition);
        return Checkpoint{std::stoull(row[0].c_str()), row[1].as<std::int64_t>()};
    }

    static std::string describe(const std::exception_ptr& error) {
        try {
            std::rethrow_exception(error);
        } catch (const std::exception& e) {
            return clipped(e.what());
        } catch (...) {
            return "unknown error";
        }
    }

    // Parks `event` in ordo.dead_letters; the letter's id.
    std::int64_t park(pqxx::transaction_base& txn, const Slot& slot,
                      const eventstore::RecordedEvent& event, const std::string& error,
                      DeadLetterPolicy policy) {
        return txn
            .exec_params1(
                "INSERT INTO ordo.dead_letters (projection, partition, transaction_id, "
                "global_position, stream_id, stream_version, event_id, event_type, "
                "schema_version, category, payload, metadata, recorded_at, error, policy) "
                "VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7::uuid, $8, $9, $10, $11::jsonb, "
                "$12::jsonb, $13::timestamptz, $14, $15) "
                "ON CONFLICT (projection, transaction_id, global_position) DO UPDATE SET "
                "attempts = ordo.dead_letters.attempts + 1, error = EXCLUDED.error, "
                "status = 'parked' RETURNING id",
                slot.projection->name(), slot.partition, std::to_string(event.transaction_id),
                event.position, event.stream_id, event.version, event.event_id, event.type,
                event.schema_version, event.category, event.payload.dump(),
                event.metadata.to_json().dump(), event.recorded_at, error,
                policy == DeadLetterPolicy::halt ? "halt" : "skip")[0]
            .as<std::int64_t>();
    }

    // After a batch failed for good: its events again, one at a time under a savepoint each,
    // to find the poison. It is parked, and the partition goes on past it (skip) or stops
    // before it (halt); the rest of the batch commits with the checkpoint. When several
    // events fail in a row, in this batch or the slot's earlier ones, the fault is the
    // sink's, not theirs: nothing more is parked and the failure goes to the breaker as
    // transient, so the partition waits at its checkpoint.
    std::size_t isolate(Slot& slot) {
        const auto name = slot.projection->name();
        const auto policy = policy_of(name);
        std::size_t parked = 0;
        std::size_t poison = 0;
        auto applied = pool->transact([&](pqxx::work& txn) -> std::size_t {
            parked = 0;
            poison = slot.poison;
            const auto at = lock_checkpoint(txn, slot);
            auto rows =
                eventstore::EventStore::read_partition(txn, at, options.partitions, slot.partition,
                                                       slot.projection->categories(), slot.batch);
            Checkpoint next = at;
            std::string last_event_at;
            std::size_t count = 0;
            for (const auto& event : rows) {
                try {
                    pqxx::subtransaction one{txn, "event"};
                    slot.projection->apply(one, event);
                    one.commit();
                    poison = 0;
                } catch (const std::exception&) {
                    const auto error = std::current_exception();
                    if (platform::pg::classify(error) == platform::FailureKind::transient) throw;
                    if (++poison > kMaxPoisonInARow) {
                        throw platform::Unavailable(
                            "projection " + name +
                            " fails on every event; not parking them: " + describe(error));
                    }
                    ++parked;
                    auto id = park(txn, slot, event, describe(error), policy);
                    log.error("poison event parked in dead letters",
                              {{"projection", name},
                               {"partition", slot.partition},
                               {"dead_letter", id},
                               {"event_id", event.event_id},
                               {"type", event.type},
                               {"policy", policy == DeadLetterPolicy::halt ? "halt" : "skip"},
                               {"error", describe(error)}});
                    if (policy == DeadLetterPolicy::halt) {
                        slot.halted_on = id;
                        break;
                    }
                }
                next = event.checkpoint();
                last_event_at = event.recorded_at;
                ++count;
            }
            if (next != at) save(txn, slot, next, last_event_at);
            return count;
        });
        slot.poison = poison;
        dead_lettered.inc(static_cast<double>(parked));
        slot.idle = false;
        return applied;
    }

    // Carries out the retry and skip requests on the slot's dead letters, in one transaction
    // with their resolutions: a retried letter takes effect exactly once. A halted
    // partition's checkpoint moves past its letter in the same transaction. True while the
    // partition is halted at a parked letter.
    bool settle(Slot& slot) {
        const auto name = slot.projection->name();
        bool halted = pool->transact([&](pqxx::work& txn) -> bool {
            auto letters = txn.exec_params(
                "SELECT id, status, policy, global_position, transaction_id::text AS txid, "
                "stream_id, category, stream_version, event_id::text, event_type, "
                "schema_version, payload::text, metadata::text, "
                "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"') "
                "FROM ordo.dead_letters WHERE projection = $1 AND partition = $2 "
                "AND status IN ('parked', 'retry_requested', 'skip_requested') ORDER BY id "
                "FOR UPDATE",
                name, slot.partition);
            std::optional<std::int64_t> halted_on;
            for (const auto& row : letters) {
                const auto id = row[0].as<std::int64_t>();
                const auto status = row[1].as<std::string>();
                const bool halts = row[2].as<std::string>() == "halt";
                if (status == "parked") {
                    if (halts && !halted_on) halted_on = id;
                    continue;
                }
                eventstore::RecordedEvent event{
                    row[3].as<std::int64_t>(),
                    std::stoull(row[4].c_str()),
                    row[5].as<std::string>(),
                    row[6].as<std::string>(),
                    row[7].as<std::int64_t>(),
                    row[8].as<std::string>(),
                    row[9].as<std::string>(),
                    row[10].as<int>(),
                    nlohmann::json::parse(row[11].as<std::string>()),
                    eventstore::Metadata::from_json(
                        nlohmann::json::parse(row[12].as<std::string>())),
                    row[13].as<std::string>()};
                std::string outcome = "skipped";
                if (status == "retry_requested") {
                    try {
                        pqxx::subtransaction one{txn, "retry"};
                        if (handles(*slot.projection, event)) slot.projection->apply(one, event);
                        one.commit();
                        outcome = "resolved";
                    } catch (const std::exception&) {
                        const auto error = std::current_exception();
                        if (platform::pg::classify(error) == platform::FailureKind::transient)
                            throw;
                        txn.exec_params(
                            "UPDATE ordo.dead_letters SET status = 'parked', attempts = attempts "
                            "+ 1, error = $2 WHERE id = $1",
                            id, describe(error));
                        log.warn("dead letter retried and failed again; parked",
                                 {{"projection", name},
                                  {"dead_letter", id},
                                  {"error", describe(error)}});
                        if (halts && !halted_on) halted_on = id;
                        continue;
                    }
                }
                txn.exec_params(
                    "UPDATE ordo.dead_letters SET status = $2, resolved_at = now() WHERE id = $1",
                    id, outcome);
                if (halts && !halted_on) {
                    // The partition waited just before this event: it goes on after it.
                    if (lock_checkpoint(txn, slot) < event.checkpoint()) {
                        save(txn, slot, event.checkpoint(), event.recorded_at);
                    }
                }
                log.info("dead letter settled",
                         {{"projection", name}, {"dead_letter", id}, {"outcome", outcome}});
            }
            slot.halted_on = halted_on;
            return halted_on.has_value();
        });
        if (halted) slot.idle = true;
        return halted;
    }

    // How far each owned slot lags, and the breaker state, into ordo.projection_status and
    // the lag gauges. Best effort: it never stops the projections.
    void write_status() {
        next_status = clock.steady_now() + options.status_interval;
        for (auto& [name, sink] : sinks) sink.breaker->observe();
        try {
            pool->transact([&](pqxx::work& txn) {
                for (const auto& projection : projections) {
                    const auto name = projection->name();
                    std::string partitions = "{";
                    std::map<int, const Slot*> owned_slots;
                    for (const auto& s : slots) {
                        if (s.projection != projection.get() || !s.owned) continue;
                        partitions +=
                            (owned_slots.empty() ? "" : ",") + std::to_string(s.partition);
                        owned_slots[s.partition] = &s;
                    }
                    partitions += "}";
                    if (owned_slots.empty()) continue;
                    const auto breaker = platform::to_string(sinks.at(name).breaker->state());
                    auto rows = txn.exec_params(
                        "SELECT c.partition, l.n, l.oldest FROM ordo.projection_checkpoints c "
                        "CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(extract(epoch FROM "
                        "now() - min(x.recorded_at)), 0)::float8 AS oldest FROM (SELECT "
                        "e.recorded_at FROM ordo.events e WHERE (e.transaction_id, "
                        "e.global_position) > (c.transaction_id, c.global_position) AND "
                        "e.transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AND "
                        "e.stream_hash % $2 = c.partition AND (cardinality($3::text[]) = 0 OR "
                        "e.category = ANY($3::text[])) ORDER BY e.transaction_id, "
                        "e.global_position LIMIT $5) x) l "
                        "WHERE c.projection = $1 AND c.partition = ANY($4::int[])",
                        name, options.partitions, pg_array(projection->categories()), partitions,
                        kMaxLagCount);
                    for (const auto& row : rows) {
                        const auto partition = row[0].as<int>();
                        const auto lag_events = row[1].as<std::int64_t>();
                        const auto lag_seconds = row[2].as<double>();
                        const platform::metrics::Labels labels{
                            {"projection", name}, {"partition", std::to_string(partition)}};
                        metrics
                            .gauge("ordo_projection_lag_events",
                                   "Events of the partition not yet applied (counted up to "
                                   "100000)",
                                   labels)
                            .set(static_cast<double>(lag_events));
                        metrics
                            .gauge("ordo_projection_lag_seconds",
                                   "How long the oldest event not yet applied has waited", labels)
                            .set(lag_seconds);
                        const auto* slot = owned_slots.at(partition);
                        txn.exec_params(
                            "INSERT INTO ordo.projection_status (projection, partition, "
                            "instance, breaker, lag_events, lag_seconds, halted_on, updated_at) "
                            "VALUES ($1, $2, $3, $4, $5, $6, $7, now()) ON CONFLICT (projection, "
                            "partition) DO UPDATE SET instance = EXCLUDED.instance, breaker = "
                            "EXCLUDED.breaker, lag_events = EXCLUDED.lag_events, lag_seconds = "
                            "EXCLUDED.lag_seconds, halted_on = EXCLUDED.halted_on, updated_at = "
                            "now()",
                            name, partition, options.instance, breaker, lag_events, lag_seconds,
                            slot->halted_on ? std::optional<std::int64_t>{*slot->halted_on}
                                            : std::nullopt);
                    }
                }
            });
            status_warned = false;
        } catch (const std::exception& e) {
            if (!status_warned) {
                log.warn("cannot write projection status", {{"error", e.what()}});
                status_warned = true;
            }
        }
    }

    // One attempt at a slot, behind its projection's breaker. While the breaker is open the
    // slot is not touched: it stays at its checkpoint. False when the breaker refused.
    bool attempt(Slot& s) {
        auto& breaker = *sinks.at(s.projection->name()).breaker;
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
            if (platform::pg::classify(std::current_exception()) ==
                platform::FailureKind::transient) {
                breaker.record(platform::CallOutcome::failure, clock.steady_now() - started);
                throw;
            }
        }
        // A permanent failure: some event of the batch cannot be applied.
        try {
            isolate(s);
            breaker.record(platform::CallOutcome::success, clock.steady_now() - started);
            return true;
        } catch (const std::exception&) {
            breaker.record(platform::outcome_of(platform::pg::classify(std::current_exception())),
                           clock.steady_now() - started);
            throw;
        }
    }

    void save(pqxx::transaction_base& txn, Slot& slot, Checkpoint next,
              const std::string& last_event_at) {
        slot.at = next;
        txn.exec_params(
            "UPDATE ordo.projection_checkpoints SET transaction_id = $3::text::xid8, "
            "global_position = $4, owner = $5, updated_at = now(), "
            "last_event_at = coalesce($6::timestamptz, last_event_at) "
            "WHERE projection = $1 AND partition = $2",
            slot.projection->name(), slot.partition, std::to_string(next.transaction_id),
            next.position, options.instance,
            last_event_at.empty() ? nullptr : last_event_at.c_str());
    }

    void run(const std::atomic<bool>& stop) {
        auto backoff = std::chrono::milliseconds(100);
        auto next_balance = std::chrono::steady_clock::now();
        while (!stop) {
            try {
                if (!session || !session->is_open()) connect_session();
                if (std::chrono::steady_clock::now() >= next_balance) {
                    balance();
                    if (!options.nats.url.empty()) subscribe_live();
                    next_balance = std::chrono::steady_clock::now() + std::chrono::seconds(1);
                }
                bool all_idle = true;
                const auto now = std::chrono::steady_clock::now();
                for (Slot* slot : in_live_order()) {
                    Slot& s = *slot;
                    if (!s.owned || stop || now < s.retry_at) continue;
                    try {
                        if (!attempt(s)) continue;  // breaker open: paused at the checkpoint
                        s.failures = 0;
                    } catch (const std::exception& e) {
                        // One slot's failure pauses that slot at its checkpoint, not the
                        // others; it is retried with a growing pause.
                        const auto kind = platform::pg::classify(std::current_exception());
                        retries.inc();
                        s.failures = std::min(s.failures + 1, 8);
                        s.retry_at = now + std::chrono::milliseconds(100 << s.failures);
                        log.warn("projection batch failed; the partition waits at its checkpoint",
                                 {{"projection", s.projection->name()},
                                  {"partition", s.partition},
                                  {"error", e.what()},
                                  {"transient", kind == platform::FailureKind::transient}});
                        if (!session->is_open()) throw;
                    }
                    all_idle = all_idle && s.idle;
                }
                backoff = std::chrono::milliseconds(100);
                trim_live();
                if (clock.steady_now() >= next_status) write_status();
                if (all_idle) wait_for_events(stop);
            } catch (const std::exception& e) {
                auto kind = platform::pg::classify(std::current_exception());
                retries.inc();
                log.warn(
                    "projection step failed; retrying",
                    {{"error", e.what()}, {"transient", kind == platform::FailureKind::transient}});
                if (session && !session->is_open()) session.reset();
                sleep_unless_stopped(stop, backoff);
                backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            }
        }
    }

    // The slots, those with live events past their checkpoint first: what just happened is
    // applied before the idle partitions are looked at, whatever their number.
    std::vector<Slot*> in_live_order() {
        std::vector<Slot*> first, then;
        for (auto& s : slots) {
            auto& buffer = *live[static_cast<std::size_t>(s.partition)];
            std::lock_guard lock{buffer.mutex};
            const bool waiting = buffer.events.has_after(s.at);
            (waiting ? first : then).push_back(&s);
        }
        first.insert(first.end(), then.begin(), then.end());
        return first;
    }

    void wait_for_events(const std::atomic<bool>& stop) {
        bool hidden = false;
        {
            pqxx::nontransaction tx{*session};
            hidden = eventstore::EventStore::hidden_by_horizon(tx);
        }
        const auto deadline = std::chrono::steady_clock::now() + horizon_wait.next(hidden);
        for (auto now = std::chrono::steady_clock::now(); !stop && !woken && now < deadline;
             now = std::chrono::steady_clock::now()) {
            // In slices: a stop, and a live event (its callback sets `woken` without a
            // word to this connection), are noticed within 10 ms.
            const auto slice = std::min<std::int64_t>(
                10'000,
                std::chrono::duration_cast<std::chrono::microseconds>(deadline - now).count());
            session->await_notification(0, static_cast<long>(slice));
        }
        woken = false;
    }

    static void sleep_unless_stopped(const std::atomic<bool>& stop, std::chrono::milliseconds d) {
        auto deadline = std::chrono::steady_clock::now() + d;
        while (!stop && std::chrono::steady_clock::now() < deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
        }
    }
};

std::map<std::string, DeadLetterPolicy> parse_dead_letter_policies(const std::string& text) {
    auto trim = [](std::string t) {
        auto first = t.find_first_not_of(" \t");
        auto last = t.find_last_not_of(" \t");
        return first == std::string::npos ? std::string{} : t.substr(first, last - first + 1);
    };
    std::map<std::string, DeadLetterPolicy> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find(',', start);
        if (end == std::string::npos) end = text.size();
        auto part = trim(text.substr(start, end - start));
        start = end + 1;
        if (part.empty()) continue;
        auto eq = part.find('=');
        auto name = eq == std::string::npos ? std::string{} : trim(part.substr(0, eq));
        auto policy = eq == std::string::npos ? std::string{} : trim(part.substr(eq + 1));
        if (name.empty() || (policy != "skip" && policy != "halt")) {
            throw platform::InvalidInput("dead-letter policy \"" + part +
                                         "\" is not <projection>=skip or <projection>=halt");
        }
        out[name] = policy == "halt" ? DeadLetterPolicy::halt : DeadLetterPolicy::skip;
    }
    return out;
}

Runtime::Runtime(RuntimeOptions options, std::vector<std::unique_ptr<Projection>> projections,
                 platform::Logger log, platform::metrics::Registry& metrics)
    : impl_{std::make_unique<Impl>(std::move(options), std::move(projections), std::move(log),
                                   metrics)} {}

Runtime::~Runtime() = default;

void Runtime::run(const std::atomic<bool>& stop) {
    impl_->run(stop);
}

std::size_t Runtime::owned_slots() const {
    return impl_->owned;
}

std::size_t batch_for(const Projection& projection, std::size_t batch,
                      std::chrono::milliseconds bound) {
    const auto worst = projection.worst_apply();
    if (worst.count() <= 0) return std::max<std::size_t>(batch, 1);
    const auto fits = static_cast<std::size_t>((bound / 2) / worst);
    return std::clamp<std::size_t>(fits, 1, std::max<std::size_t>(batch, 1));
}

int slot_lock_key(const std::string& projection) {
    return static_cast<int>(platform::stream_hash("ordo.projection." + projection) & 0x7fffffff);
}

}  // namespace ordo::projections
