// The relay's leader election, publish loop and checkpoint (see relay.hpp).
#include "relay/relay.hpp"

#include <algorithm>
#include <future>
#include <optional>
#include <thread>
#include <tuple>
#include <utility>

#include <nlohmann/json.hpp>

#include "eventstore/event_store.hpp"
#include "eventstore/wire.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/hops.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/http/otlp.hpp"
#include "platform/pg/pg.hpp"
#include "relay/leader_session.hpp"

namespace ordo::relay {
namespace {

using eventstore::Checkpoint;
using eventstore::EventStore;
using eventstore::HorizonWait;
using eventstore::RecordedEvent;

using namespace std::chrono_literals;
using platform::jetstream::Message;

constexpr auto kStandbyRetry = 1s;
constexpr auto kMaxBackoff = 5s;

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
          horizon_hidden{registry.gauge(
              "ordo_horizon_hidden_seconds",
              "How long committed events have been hidden from every reader by a transaction "
              "still running in the cluster (the xid horizon): what it adds to read-your-writes",
              labels)},
          leader_gauge{registry.gauge("ordo_relay_leader",
                                      "1 while this process holds the relay lock of the shard",
                                      labels)},
          read_hop{platform::metrics::hop(registry, "relay_read", labels)},
          acked_hop{platform::metrics::hop(registry, "relay_acked", labels)} {
        if (options.instance.empty()) options.instance = "relay";
        pool.register_metrics(registry);
    }

    // One round of the publish loop: the events after `from`, read in commit order, and their
    // messages, chained per partition from `from`.
    // Copies a partition move brought to this shard are not published (their originals
    // were, by the shard they came from), but the relay moves past them, and each becomes its
    // partition's latest event: the partition's next event names it as its predecessor,
    // which is where the projections' checkpoints were rebased to.
    struct Round {
        RelayState from;
        std::vector<RecordedEvent> events;                   // to publish
        std::vector<std::pair<std::string, Message>> batch;  // (subject, message) per event
        std::vector<int> partitions;                         // per event
        // Copies read: (index in `events` of the first published event after it, its key,
        // its partition), in commit order.
        std::vector<std::tuple<std::size_t, Checkpoint, int>> copies;
        std::chrono::system_clock::time_point read_at{};

        // `from` moved past the first `acked` events and every copy before the next one.
        RelayState after(std::size_t acked) const {
            RelayState state = from;
            auto copy = copies.begin();
            for (std::size_t i = 0; i <= acked; ++i) {
                for (; copy != copies.end() && std::get<0>(*copy) == i; ++copy) {
                    state.checkpoint = std::get<1>(*copy);
                    state.previous[std::get<2>(*copy)] = state.checkpoint;
                }
                if (i < acked) state.advance(events[i], partitions[i]);
            }
            return state;
        }
    };
    Round prepare(const RelayState& from);

    void run(const std::atomic<bool>& stop);
    void lead(LeaderSession& session, const std::atomic<bool>& stop);
    bool publish_stream_config();
    // Exports how long events have been hidden by the horizon; true when some are.
    // Every few seconds it also reports the leader and that age in the checkpoint row.
    bool observe_horizon(LeaderSession& session) { return observed(session, session.hidden_for()); }
    // As observe_horizon, with the age asked already.
    bool observed(LeaderSession& session, std::optional<double> hidden) {
        horizon_hidden.set(hidden.value_or(0));
        horizon_observed = std::chrono::steady_clock::now();
        if (!reported || horizon_observed >= *reported + kReportInterval) {
            // The report only feeds a display: failing to write it (a database not yet
            // migrated, a missing grant) is logged once per term, never a lost leadership.
            if (auto error = session.report(options.instance, hidden.value_or(0), !reported)) {
                if (!report_failed) {
                    auto f = fields();
                    f["error"] = *error;
                    log.warn("relay cannot show itself as the shard's leader; publishing goes on",
                             f);
                }
                report_failed = true;
            }
            reported = horizon_observed;
        }
        return hidden.has_value();
    }
    static constexpr auto kReportInterval = std::chrono::seconds(2);
    void set_leader(bool value) {
        leader = value;
        leader_gauge.set(value ? 1 : 0);
        if (!value) horizon_hidden.set(0);  // the leader's to tell
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
    platform::metrics::Gauge& horizon_hidden;
    platform::metrics::Gauge& leader_gauge;
    // From an event's recorded_at (its transaction's start: PostgreSQL keeps no commit time
    // unless track_commit_timestamp is on) to the relay reading it, and to JetStream's ack.
    platform::metrics::Histogram& read_hop;
    platform::metrics::Histogram& acked_hop;
    std::atomic<bool> leader{false};
    std::chrono::steady_clock::time_point horizon_observed{};
    std::optional<std::chrono::steady_clock::time_point> reported;  // this term's last report
    bool report_failed = false;                                     // logged this term
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
                              .max_age = options.max_age,
                              .replicas = options.replicas});
        return true;
    } catch (const std::exception& e) {
        auto f = fields();
        f["stream"] = options.stream;
        f["error"] = e.what();
        log.warn("cannot ensure the JetStream stream; retrying", f);
        return false;
    }
}

Relay::Impl::Round Relay::Impl::prepare(const RelayState& from) {
    Round round{.from = from,
                .events = store.read_all(from.checkpoint, options.batch),
                .read_at = std::chrono::system_clock::now()};
    round.batch.reserve(round.events.size());
    round.partitions.reserve(round.events.size());
    auto previous = from.previous;
    std::vector<RecordedEvent> published;
    published.reserve(round.events.size());
    for (auto& e : round.events) {
        const int partition = platform::partition_of(e.stream_id, options.partitions);
        auto& last = previous[partition];
        if (e.moved) {
            round.copies.emplace_back(published.size(), e.checkpoint(), partition);
            last = e.checkpoint();
            continue;
        }
        round.partitions.push_back(partition);
        auto wire =
            eventstore::encode_wire(e, options.subject_prefix, partition, last, options.shard);
        round.batch.emplace_back(
            std::move(wire.subject),
            Message{.headers = std::move(wire.headers), .data = std::move(wire.body)});
        last = e.checkpoint();
        published.push_back(std::move(e));
    }
    round.events = std::move(published);
    return round;
}

void Relay::Impl::lead(LeaderSession& session, const std::atomic<bool>& stop) {
    RelayState state = session.load();
    reported.reset();  // a new term
    report_failed = false;
    bool stream_ready = false;
    HorizonWait horizon_wait{options.poll_interval};
    std::future<Round> ahead;  // the next round, read while this one publishes
    auto backoff = std::chrono::milliseconds(100);
    auto retry_later = [&] {
        pause(stop, backoff);
        backoff = std::min<std::chrono::milliseconds>(backoff * 2, kMaxBackoff);
    };

    // The store's head, for the lag gauge, asked at most once a second: a statement every
    // round was a third of a busy relay's. So the gauge may read up to a second's appends
    // low (0 once the relay reached the head it last asked for). The session's life is proven
    // where it counts: by each save, which checks the lock, and, idle, by the horizon's probe.
    std::int64_t head = 0;
    std::optional<std::chrono::steady_clock::time_point> head_asked;
    // This round's read follows a probe that found events to read: if it finds none again,
    // the relay waits all the same rather than spin.
    bool rereading = false;
    while (!stop) {
        if (const auto now = std::chrono::steady_clock::now();
            !head_asked || now >= *head_asked + 1s) {
            head = session.max_position();
            head_asked = now;
        }
        lag_events.set(
            static_cast<double>(std::max<std::int64_t>(0, head - state.checkpoint.position)));
        if (!client.connected()) {
            stream_ready = false;
            // Still the leader while NATS is away: it goes on saying so.
            if (std::chrono::steady_clock::now() >= horizon_observed + std::chrono::seconds(1))
                observe_horizon(session);
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

        Round round;
        try {
            round = ahead.valid() ? ahead.get() : prepare(state);
            if (round.from.checkpoint != state.checkpoint) round = prepare(state);
        } catch (const std::exception& e) {
            auto f = fields();
            f["error"] = e.what();
            log.warn("relay cannot read the event store; retrying", f);
            retry_later();
            continue;
        }
        const auto& events = round.events;
        const auto& batch = round.batch;
        // Observed for the round that is published: a round read ahead and dropped is read
        // again, and counted then.
        for (const auto& e : events) {
            if (auto age = platform::metrics::seconds_since(e.recorded_at, round.read_at)) {
                read_hop.observe(*age);
            }
        }
        if (events.empty() && !round.copies.empty()) {
            rereading = false;
            auto next = round.after(0);
            session.save(next);
            state = std::move(next);
            continue;
        }
        if (events.empty()) {
            lag_seconds.set(0);
            // Asked after the read, of what comes after it: events that committed, or that
            // the horizon passed, since the read are read again at once. Their notification
            // may have come before the read, or never (a horizon passing notifies no one).
            const auto unread = session.unread_after(state.checkpoint);
            if (unread.readable && !std::exchange(rereading, true)) continue;
            rereading = false;
            session.wait_for_appends(horizon_wait.next(observed(session, unread.hidden_for)));
            continue;
        }
        rereading = false;
        // While busy, the horizon's age is looked at about once a second.
        if (std::chrono::steady_clock::now() >= horizon_observed + std::chrono::seconds(1)) {
            observe_horizon(session);
        }
        // A full batch means a backlog: the next round is read and encoded while this one
        // publishes, from where this one ends if JetStream acknowledges all of it.
        if (events.size() + round.copies.size() >= options.batch) {
            RelayState after = round.after(events.size());
            ahead = std::async(std::launch::async, [this, after] { return prepare(after); });
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
        const auto acked_at = std::chrono::system_clock::now();
        for (std::size_t i = 0; i < acked; ++i) {
            if (auto age = platform::metrics::seconds_since(events[i].recorded_at, acked_at)) {
                acked_hop.observe(*age);
            }
        }
        if (acked > 0 || !round.copies.empty()) {
            published.inc(static_cast<double>(acked));
            auto next = round.after(acked);
            session.save(next);
            state = std::move(next);
            lag_events.set(
                static_cast<double>(std::max<std::int64_t>(0, head - state.checkpoint.position)));
        }
        const bool behind =
            acked < events.size() || events.size() + round.copies.size() >= options.batch;
        if (behind) {
            if (auto age = platform::metrics::seconds_since(
                    events[acked > 0 ? acked - 1 : 0].recorded_at, acked_at)) {
                lag_seconds.set(*age);
            }
        } else {
            lag_seconds.set(0);
        }
        if (acked < events.size()) {
            // Never past an unacknowledged event: retry the rest after a pause. The client
            // has logged why. A round read ahead starts past them: dropped.
            if (ahead.valid()) ahead.wait();
            ahead = {};
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
