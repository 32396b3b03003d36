// The relay's leader election, publish loop and checkpoint (see relay.hpp).
#include "relay/relay.hpp"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <ctime>
#include <map>
#include <optional>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/wire.hpp"
#include "platform/errors.hpp"
#include "platform/otlp.hpp"
#include "platform/partition.hpp"
#include "platform/pg.hpp"
#include "platform/trace.hpp"

namespace ordo::relay {
namespace {

using eventstore::AppendNotifier;
using eventstore::Checkpoint;
using eventstore::EventStore;
using eventstore::HorizonWait;
using eventstore::RecordedEvent;

using namespace std::chrono_literals;
using platform::jetstream::Message;

// First key of the relay's advisory lock (two-int form: key, shard). It only has to differ
// from the other advisory locks Ordo takes; the migrator uses the one-bigint form.
constexpr int kRelayLockKey = 0x72656c61;  // "rela"

constexpr auto kStandbyRetry = 1s;
constexpr auto kMaxBackoff = 5s;

// Thrown when the session that held the lock is gone or no longer holds it.
class LeadershipLost : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

// The relay's position and, per partition, the order key of the last event published there.
struct RelayState {
    Checkpoint checkpoint;
    std::map<int, Checkpoint> previous;

    // Moves past `event`, which was published to `partition`.
    void advance(const RecordedEvent& event, int partition) {
        checkpoint = event.checkpoint();
        previous[partition] = checkpoint;
    }
    std::string previous_json() const {
        auto j = nlohmann::json::object();
        for (const auto& [partition, key] : previous) j[std::to_string(partition)] = key.token();
        return j.dump();
    }
};

// Sleeps up to `duration`; returns early (false) when `stop` is set.
bool pause(const std::atomic<bool>& stop, std::chrono::milliseconds duration) {
    auto until = std::chrono::steady_clock::now() + duration;
    while (!stop) {
        auto left = until - std::chrono::steady_clock::now();
        if (left <= 0s) return true;
        std::this_thread::sleep_for(std::min<std::chrono::steady_clock::duration>(left, 50ms));
    }
    return false;
}

std::optional<std::chrono::system_clock::time_point> parse_recorded_at(const std::string& text) {
    std::tm tm{};
    int micros = 0;
    int n = std::sscanf(text.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6dZ", &tm.tm_year, &tm.tm_mon,
                        &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros);
    if (n < 6) return std::nullopt;
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return std::chrono::system_clock::from_time_t(timegm(&tm)) + std::chrono::microseconds(micros);
}

// A PRODUCER span for each published event that carries a trace: a child of the span that
// appended it, as the messaging conventions name and describe a publish. The message's
// traceparent stays the appending span's, so that a consumer has the same parent whether it
// reads the event from NATS or from the store (docs/architecture.md, Tracing).
void record_publish_spans(platform::otlp::Exporter& exporter, const std::string& stream,
                          const std::vector<RecordedEvent>& events,
                          const std::vector<std::pair<std::string, Message>>& batch,
                          std::size_t acked, platform::Clock::time_point started,
                          platform::Clock::time_point ended, const platform::Logger& log) {
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& e = events[i];
        auto parent = eventstore::traceparent_of(e.metadata);
        if (!parent) continue;
        auto context = platform::TraceContext::parse(*parent);
        platform::otlp::Span span;
        span.context = platform::child_span(*context);
        span.parent_span_id = context->span_id;
        span.name = "publish " + batch[i].first;
        span.kind = platform::otlp::SpanKind::producer;
        span.start = started;
        span.end = ended;
        span.attributes = {{"messaging.system", std::string("nats")},
                           {"messaging.operation.type", std::string("publish")},
                           {"messaging.operation.name", std::string("publish")},
                           {"messaging.destination.name", batch[i].first},
                           {"messaging.message.id", e.event_id},
                           {"messaging.jetstream.stream", stream},
                           {"ordo.stream", e.stream_id},
                           {"ordo.event.type", e.type},
                           {"ordo.position", std::int64_t{e.position}}};
        if (i >= acked) {
            span.error = true;
            span.status_message = "not acknowledged";
        }
        if (log.enabled(platform::LogLevel::debug)) {
            log.log(platform::LogLevel::debug, i < acked ? "published" : "publish failed",
                    span.context,
                    {{"subject", batch[i].first},
                     {"event_id", e.event_id},
                     {"stream", e.stream_id},
                     {"type", e.type}});
        }
        exporter.record(std::move(span));
    }
}

std::uint64_t parse_u64(const std::string& text) {
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr != text.data() + text.size()) {
        throw std::runtime_error("not an unsigned integer: " + text);
    }
    return value;
}

// The leader's own PostgreSQL session: it holds the advisory lock, listens for appends and
// writes the checkpoint, so a checkpoint is only ever written while the lock is held.
class LeaderSession {
   public:
    LeaderSession(const std::string& url, int shard)
        : conn_{platform::pg::connection_url(url, "ordo-relay")},
          shard_{shard},
          listener_{conn_, woken_} {
        pqxx::nontransaction tx{conn_};
        tx.exec("SET application_name = 'ordo-relay'; SET statement_timeout = 15000");
        backend_pid_ = conn_.backendpid();
    }

    bool try_lock() {
        check();
        pqxx::nontransaction tx{conn_};
        return tx
            .exec_params1("SELECT pg_try_advisory_lock($1::int, $2::int)", kRelayLockKey, shard_)[0]
            .as<bool>();
    }

    void unlock() {
        pqxx::nontransaction tx{conn_};
        tx.exec_params("SELECT pg_advisory_unlock($1::int, $2::int)", kRelayLockKey, shard_);
    }

    RelayState load() {
        check();
        pqxx::nontransaction tx{conn_};
        tx.exec_params(
            "INSERT INTO ordo.relay_checkpoint (shard) VALUES ($1) "
            "ON CONFLICT (shard) DO NOTHING",
            shard_);
        auto row = tx.exec_params1(
            "SELECT transaction_id::text, global_position, previous::text "
            "FROM ordo.relay_checkpoint WHERE shard = $1",
            shard_);
        RelayState state;
        state.checkpoint = {parse_u64(row[0].as<std::string>()), row[1].as<std::int64_t>()};
        const auto previous = nlohmann::json::parse(row[2].as<std::string>());
        for (const auto& [partition, key] : previous.items()) {
            auto checkpoint = Checkpoint::parse_token(key.get<std::string>());
            if (!checkpoint) {
                throw std::runtime_error("the relay checkpoint's previous key of partition " +
                                         partition + " is not an order key: " + key.dump());
            }
            state.previous[std::stoi(partition)] = *checkpoint;
        }
        return state;
    }

    // Writes only while this very session holds the lock: a session that pqxx silently
    // re-established, or one whose lock was released, writes nothing.
    void save(const RelayState& state) {
        check();
        pqxx::nontransaction tx{conn_};
        auto result = tx.exec_params(
            "UPDATE ordo.relay_checkpoint SET transaction_id = $2::text::xid8, "
            "global_position = $3, previous = $4::jsonb, updated_at = now() "
            "WHERE shard = $1 AND EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' "
            "AND pid = pg_backend_pid() AND granted AND classid = $5::int::oid "
            "AND objid = $1::int::oid AND objsubid = 2)",
            shard_, std::to_string(state.checkpoint.transaction_id), state.checkpoint.position,
            state.previous_json(), kRelayLockKey);
        if (result.affected_rows() != 1) {
            throw LeadershipLost("the relay lock is no longer held by this session");
        }
    }

    bool hidden_by_horizon() {
        check();
        pqxx::nontransaction tx{conn_};
        return EventStore::hidden_by_horizon(tx);
    }

    std::int64_t max_position() {
        check();
        pqxx::nontransaction tx{conn_};
        return tx.exec1("SELECT coalesce(max(global_position), 0) FROM ordo.events")[0]
            .as<std::int64_t>();
    }

    // Returns when an append was announced or after `timeout`.
    void wait_for_appends(std::chrono::milliseconds timeout) {
        if (!woken_) {
            auto us = std::chrono::duration_cast<std::chrono::microseconds>(timeout).count();
            conn_.await_notification(us / 1'000'000, us % 1'000'000);
        }
        woken_ = false;
        check();
    }

   private:
    struct Listener final : pqxx::notification_receiver {
        Listener(pqxx::connection_base& conn, bool& woken)
            : pqxx::notification_receiver{conn, AppendNotifier::kChannel}, woken_{woken} {}
        void operator()(const std::string&, int) override { woken_ = true; }
        bool& woken_;
    };

    // libpqxx 6 re-opens a broken connection by itself; that new session holds no lock.
    void check() {
        if (!conn_.is_open() || conn_.backendpid() != backend_pid_) {
            throw LeadershipLost("the relay's database session was lost");
        }
    }

    pqxx::connection conn_;
    int shard_;
    bool woken_ = false;
    Listener listener_;
    int backend_pid_ = 0;
};

}  // namespace

struct Relay::Impl {
    Impl(RelayOptions o, platform::jetstream::Client& c, platform::Logger l,
         platform::metrics::Registry& registry)
        : options{std::move(o)},
          client{c},
          log{std::move(l)},
          pool{platform::pg::PoolOptions{.url = options.database_url,
                                         .size = 2,
                                         .statement_timeout = std::chrono::milliseconds(30'000),
                                         .name = "relay",
                                         .preparers = {&EventStore::prepare}}},
          store{pool},
          labels{{"shard", std::to_string(options.shard)}},
          published{registry.counter("ordo_relay_published_total",
                                     "Events published to JetStream and acknowledged", labels)},
          publish_failures{registry.counter(
              "ordo_relay_publish_failures_total",
              "Batches JetStream did not acknowledge in full (retried after a backoff)", labels)},
          lag_events{registry.gauge(
              "ordo_relay_lag_events",
              "Approximate events not yet published: highest global position minus the "
              "relay checkpoint's position",
              labels)},
          lag_seconds{registry.gauge(
              "ordo_relay_lag_seconds",
              "Age of the last published event while the relay is behind; 0 when caught up",
              labels)},
          leader_gauge{registry.gauge("ordo_relay_leader",
                                      "1 while this process holds the relay lock of the shard",
                                      labels)} {
        if (options.instance.empty()) options.instance = "relay";
        pool.register_metrics(registry);
    }

    void run(const std::atomic<bool>& stop);
    void lead(LeaderSession& session, const std::atomic<bool>& stop);
    bool publish_stream_config();
    void set_leader(bool value) {
        leader = value;
        leader_gauge.set(value ? 1 : 0);
    }
    nlohmann::json fields() const {
        return {{"shard", options.shard}, {"instance", options.instance}};
    }

    RelayOptions options;
    platform::jetstream::Client& client;
    platform::Logger log;
    platform::pg::Pool pool;
    EventStore store;
    platform::metrics::Labels labels;
    platform::metrics::Counter& published;
    platform::metrics::Counter& publish_failures;
    platform::metrics::Gauge& lag_events;
    platform::metrics::Gauge& lag_seconds;
    platform::metrics::Gauge& leader_gauge;
    std::atomic<bool> leader{false};
};

void Relay::Impl::run(const std::atomic<bool>& stop) {
    auto backoff = std::chrono::milliseconds(250);
    bool announced_standby = false;
    while (!stop) {
        try {
            LeaderSession session{options.database_url, options.shard};
            backoff = 250ms;
            while (!stop) {
                if (session.try_lock()) {
                    set_leader(true);
                    announced_standby = false;
                    log.info("relay leads the shard", fields());
                    lead(session, stop);
                    session.unlock();
                    set_leader(false);
                    log.info("relay stopped and released the shard", fields());
                    return;
                }
                if (!announced_standby) {
                    log.info("relay standing by: another instance leads the shard", fields());
                    announced_standby = true;
                }
                pause(stop, kStandbyRetry);
            }
        } catch (const std::exception& e) {
            auto f = fields();
            f["error"] = e.what();
            if (leader) {
                set_leader(false);
                log.warn("relay lost leadership; reconnecting", f);
            } else {
                log.warn("relay database session failed; reconnecting", f);
            }
            announced_standby = false;
            pause(stop, backoff);
            backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
        }
    }
    set_leader(false);
}

bool Relay::Impl::publish_stream_config() {
    try {
        client.ensure_stream({.name = options.stream,
                              .subjects = {options.subject_prefix + ".>"},
                              .duplicate_window = options.duplicate_window,
                              .max_age = options.max_age});
        return true;
    } catch (const std::exception& e) {
        auto f = fields();
        f["stream"] = options.stream;
        f["error"] = e.what();
        log.warn("cannot ensure the JetStream stream; retrying", f);
        return false;
    }
}

void Relay::Impl::lead(LeaderSession& session, const std::atomic<bool>& stop) {
    RelayState state = session.load();
    bool stream_ready = false;
    HorizonWait horizon_wait{options.poll_interval};
    auto backoff = std::chrono::milliseconds(100);
    auto retry_later = [&] {
        pause(stop, backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
    };

    while (!stop) {
        const auto head = session.max_position();  // also proves the session is alive
        lag_events.set(
            static_cast<double>(std::max<std::int64_t>(0, head - state.checkpoint.position)));
        if (!client.connected()) {
            stream_ready = false;
            pause(stop, 250ms);
            continue;
        }
        // At start, and again after a failed publish: the stream may have been deleted or
        // lost with the server's store.
        if (!stream_ready) {
            stream_ready = publish_stream_config();
            if (!stream_ready) {
                retry_later();
                continue;
            }
        }

        std::vector<RecordedEvent> events;
        try {
            events = store.read_all(state.checkpoint, options.batch);
        } catch (const std::exception& e) {
            auto f = fields();
            f["error"] = e.what();
            log.warn("relay cannot read the event store; retrying", f);
            retry_later();
            continue;
        }
        if (events.empty()) {
            lag_seconds.set(0);
            session.wait_for_appends(horizon_wait.next(session.hidden_by_horizon()));
            continue;
        }

        std::vector<std::pair<std::string, Message>> batch;
        batch.reserve(events.size());
        std::vector<int> partitions;
        partitions.reserve(events.size());
        auto previous = state.previous;
        for (const auto& e : events) {
            int partition = platform::partition_of(e.stream_id, options.partitions);
            partitions.push_back(partition);
            auto& last = previous[partition];
            auto wire = eventstore::encode_wire(e, options.subject_prefix, partition, last);
            batch.emplace_back(std::move(wire.subject), Message{.headers = std::move(wire.headers),
                                                                .data = std::move(wire.body)});
            last = e.checkpoint();
        }

        const auto publish_started =
            options.spans ? options.spans->now() : platform::Clock::time_point{};
        auto acked = client.publish_batch(batch, options.window, options.publish_timeout);
        if (options.spans) {
            record_publish_spans(*options.spans, options.stream, events, batch, acked,
                                 publish_started, options.spans->now(), log);
        } else if (log.enabled(platform::LogLevel::debug)) {
            for (std::size_t i = 0; i < acked; ++i) {
                if (auto parent = eventstore::traceparent_of(events[i].metadata)) {
                    log.log(platform::LogLevel::debug, "published",
                            *platform::TraceContext::parse(*parent),
                            {{"subject", batch[i].first},
                             {"event_id", events[i].event_id},
                             {"stream", events[i].stream_id},
                             {"type", events[i].type}});
                }
            }
        }
        if (acked > 0) {
            published.inc(static_cast<double>(acked));
            auto next = state;
            for (std::size_t i = 0; i < acked; ++i) next.advance(events[i], partitions[i]);
            session.save(next);
            state = std::move(next);
            lag_events.set(
                static_cast<double>(std::max<std::int64_t>(0, head - state.checkpoint.position)));
        }
        const bool behind = acked < events.size() || events.size() >= options.batch;
        if (behind) {
            if (auto at = parse_recorded_at(events[acked > 0 ? acked - 1 : 0].recorded_at)) {
                auto age = std::chrono::duration<double>(std::chrono::system_clock::now() - *at);
                lag_seconds.set(std::max(0.0, age.count()));
            }
        } else {
            lag_seconds.set(0);
        }
        if (acked < events.size()) {
            // Never past an unacknowledged event: retry the rest after a pause. The client
            // has logged why.
            publish_failures.inc();
            stream_ready = false;
            retry_later();
        } else {
            backoff = 100ms;
        }
    }
}

Relay::Relay(RelayOptions options, platform::jetstream::Client& client, platform::Logger log,
             platform::metrics::Registry& metrics)
    : impl_{std::make_unique<Impl>(std::move(options), client, std::move(log), metrics)} {}

Relay::~Relay() = default;

void Relay::run(const std::atomic<bool>& stop) {
    impl_->run(stop);
}

bool Relay::is_leader() const {
    return impl_->leader;
}

}  // namespace ordo::relay
