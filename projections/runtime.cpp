#include "projections/runtime.hpp"

#include <algorithm>
#include <deque>
#include <map>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/jetstream.hpp"
#include "platform/metrics.hpp"
#include "platform/partition.hpp"
#include "platform/pg.hpp"

namespace ordo::projections {
namespace {

using eventstore::Checkpoint;

// The advisory-lock key of a slot: (hash of the projection name, partition).
int lock_key(const std::string& projection) {
    return static_cast<int>(platform::stream_hash("ordo.projection." + projection) & 0x7fffffff);
}

struct Slot {
    Projection* projection;
    int partition;
    bool owned = false;
    bool idle = false;  // caught up at the last look
    int failures = 0;   // consecutive
    std::chrono::steady_clock::time_point retry_at{};
};

// An event delivered by JetStream, with its place in the partition's chain.
struct LiveEvent {
    Checkpoint key;
    Checkpoint previous;  // {0, 0} for a partition's first event
    eventstore::RecordedEvent event;
};

std::optional<Checkpoint> header_checkpoint(const platform::jetstream::Message& m,
                                            const char* name) {
    auto it = m.headers.find(name);
    if (it == m.headers.end() || it->second.empty()) return std::nullopt;
    return Checkpoint::parse_token(it->second);
}

std::optional<LiveEvent> decode_live(const platform::jetstream::Message& m) {
    auto key = header_checkpoint(m, "ordo-order-key");
    if (!key) return std::nullopt;
    try {
        auto j = nlohmann::json::parse(m.data);
        eventstore::RecordedEvent e{j.at("position").get<std::int64_t>(),
                                    j.at("transaction_id").get<std::uint64_t>(),
                                    j.at("stream").get<std::string>(),
                                    j.at("category").get<std::string>(),
                                    j.at("version").get<std::int64_t>(),
                                    j.at("event_id").get<std::string>(),
                                    j.at("type").get<std::string>(),
                                    j.at("schema_version").get<int>(),
                                    j.at("payload"),
                                    eventstore::Metadata::from_json(j.at("metadata")),
                                    j.at("recorded_at").get<std::string>()};
        return LiveEvent{*key, header_checkpoint(m, "ordo-previous").value_or(Checkpoint{}),
                         std::move(e)};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

// The newest live events of one partition, shared by the projections on it.
struct LiveBuffer {
    static constexpr std::size_t kCapacity = 20'000;
    std::mutex mutex;
    std::deque<LiveEvent> events;
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
    platform::metrics::Counter& applied_store;
    platform::metrics::Counter& applied_live;
    platform::metrics::Counter& retries;
    std::vector<std::unique_ptr<LiveBuffer>> live;
    std::unique_ptr<platform::jetstream::Client> nats;
    std::vector<std::unique_ptr<platform::jetstream::Client::Subscription>> subscriptions;
    bool live_warned = false;

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
                            "Batches retried after a transient failure")} {
        for (auto& projection : projections) {
            for (int p = 0; p < options.partitions; ++p) slots.push_back({projection.get(), p});
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
            .name = "projector",
            .preparers = {relaxed_commit, &eventstore::EventStore::prepare}});
        for (int p = 0; p < options.partitions; ++p) live.push_back(std::make_unique<LiveBuffer>());
    }

    ~Impl() {
        subscriptions.clear();  // before the buffers they feed
    }

    // Subscribes the partitions that have no live consumer yet. A stream that does not
    // exist yet (no relay has run) is retried at the next balance; meanwhile the store
    // carries everything.
    void subscribe_live() {
        if (!nats) {
            nats = std::make_unique<platform::jetstream::Client>(
                options.nats_url, log.with_component("nats"), &metrics);
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
                        auto event = decode_live(m);
                        if (!event) return;
                        {
                            std::lock_guard lock{buffer->mutex};
                            buffer->events.push_back(std::move(*event));
                            if (buffer->events.size() > LiveBuffer::kCapacity)
                                buffer->events.pop_front();
                        }
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
    std::vector<eventstore::RecordedEvent> live_run(int partition, Checkpoint at,
                                                    bool& rest_empty) {
        auto& buffer = *live[static_cast<std::size_t>(partition)];
        std::lock_guard lock{buffer.mutex};
        std::vector<eventstore::RecordedEvent> run;
        Checkpoint tip = at;
        std::size_t behind = 0;  // already applied by this projection; others may still need them
        for (const auto& e : buffer.events) {
            if (e.key <= at) {
                ++behind;
                continue;
            }
            // The predecessor must be at or below what is applied: otherwise an event is
            // missing between them and the store has to fill the gap.
            if (e.previous > tip || run.size() >= options.batch) break;
            run.push_back(e.event);
            tip = e.key;
        }
        rest_empty = behind + run.size() == buffer.events.size();
        return run;
    }

    struct Listener final : pqxx::notification_receiver {
        Listener(pqxx::connection& c, std::atomic<bool>& flag)
            : notification_receiver{c, eventstore::AppendNotifier::kChannel}, woken{flag} {}
        void operator()(const std::string&, int) override { woken = true; }
        std::atomic<bool>& woken;
    };

    void connect_session() {
        listener.reset();
        session = std::make_unique<pqxx::connection>(options.database_url);
        listener = std::make_unique<Listener>(*session, woken);
        for (auto& s : slots) s.owned = false;
        owned = 0;
    }

    // Heartbeat, then take or give back slots until this instance holds its fair share.
    void balance() {
        pqxx::nontransaction tx{*session};
        auto live = tx.exec_params1(
                          "WITH beat AS (INSERT INTO ordo.projector_instances (instance, "
                          "heartbeat_at) VALUES ($1, now()) ON CONFLICT (instance) DO UPDATE "
                          "SET heartbeat_at = now()) SELECT count(*) + 1 FROM "
                          "ordo.projector_instances WHERE heartbeat_at > now() - "
                          "make_interval(secs => $2) AND instance <> $1",
                          options.instance, static_cast<double>(options.instance_ttl.count()))[0]
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
                                lock_key(s.projection->name()), s.partition)[0]
                    .as<bool>()) {
                s.owned = true;
                ++held;
                s.idle = false;
            }
        }
        for (std::size_t i = 0; i < slots.size() && held > fair; ++i) {
            auto& s = slots[(start + slots.size() - 1 - i) % slots.size()];
            if (!s.owned) continue;
            tx.exec_params("SELECT pg_advisory_unlock($1, $2)", lock_key(s.projection->name()),
                           s.partition);
            s.owned = false;
            --held;
        }
        owned = held;
    }

    // One step of a slot: apply the next batch of its partition's events, or, when there
    // are none, move its checkpoint up to the head of the log below the horizon so that
    // consistency tokens see an idle partition as caught up. Returns events applied.
    std::size_t step(Slot& slot) {
        const auto name = slot.projection->name();
        return pool->transact([&](pqxx::work& txn) -> std::size_t {
            // The checkpoint row, locked: a batch commits only over the checkpoint it read,
            // so an instance that lost the slot mid-batch cannot apply it a second time.
            txn.exec_params(
                "INSERT INTO ordo.projection_checkpoints (projection, partition) VALUES ($1, $2) "
                "ON CONFLICT DO NOTHING",
                name, slot.partition);
            auto row = txn.exec_params1(
                "SELECT transaction_id::text, global_position FROM ordo.projection_checkpoints "
                "WHERE projection = $1 AND partition = $2 FOR UPDATE",
                name, slot.partition);
            Checkpoint at{std::stoull(row[0].c_str()), row[1].as<std::int64_t>()};
            bool live_drained = false;
            auto run = live_run(slot.partition, at, live_drained);
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
            auto rows = eventstore::EventStore::read_partition(
                txn, at, options.partitions, slot.partition, slot.projection->categories(),
                options.batch);
            Checkpoint next = at;
            std::string last_event_at;
            for (const auto& event : rows) {
                slot.projection->apply(txn, event);
                next = event.checkpoint();
                last_event_at = event.recorded_at;
            }
            if (rows.size() < options.batch && head && *head > next) next = *head;
            slot.idle = rows.size() < options.batch;
            if (next == at) return 0;
            save(txn, slot, next, last_event_at);
            applied_store.inc(static_cast<double>(rows.size()));
            return rows.size();
        });
    }

    void save(pqxx::transaction_base& txn, const Slot& slot, Checkpoint next,
              const std::string& last_event_at) {
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
                    if (!options.nats_url.empty()) subscribe_live();
                    next_balance = std::chrono::steady_clock::now() + std::chrono::seconds(1);
                }
                bool all_idle = true;
                const auto now = std::chrono::steady_clock::now();
                for (auto& s : slots) {
                    if (!s.owned || stop || now < s.retry_at) continue;
                    try {
                        step(s);
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

    void wait_for_events(const std::atomic<bool>& stop) {
        auto deadline = std::chrono::steady_clock::now() + options.poll_interval;
        while (!stop && !woken && std::chrono::steady_clock::now() < deadline) {
            session->await_notification(0, 50'000);
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

}  // namespace ordo::projections
