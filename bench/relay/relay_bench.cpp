// The relay's throughput beside raw JetStream async publishing, measured in the same run on
// the same nats-server: ORDO_BENCH_EVENTS events (100,000 unless set) are appended to a fresh
// store first; then the raw baseline publishes the very messages the relay would (subjects,
// headers with Nats-Msg-Id, bodies: encode_wire) straight through cnats's
// js_PublishMsgAsync with the relay's window of unacknowledged messages, and waits for every
// acknowledgement; then the relay, started from an empty checkpoint, publishes the store until
// JetStream holds every event; then the baseline again. Each run has a JetStream stream of its
// own. The ratio is the relay's rate over the two baseline runs' mean: what reading the store
// in commit order, chaining partitions and advancing the checkpoint costs beside publishing.
// Run through bench/relay/run.sh.
#include <nats/nats.h>

#include <atomic>
#include <cstdio>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/support/scratch_database.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/topology.hpp"
#include "eventstore/wire.hpp"
#include "platform/core/config.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/nats/nats_options.hpp"
#include "platform/pg/pg.hpp"
#include "relay/relay.hpp"

using namespace ordo;
using ordo::bench::required;
using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

namespace {

double seconds_since(Clock::time_point start) {
    return std::chrono::duration<double>(Clock::now() - start).count();
}

// Appends `count` events to 1,000 streams in batches of 100, from four writers.
void fill(platform::pg::Pool& pool, long count) {
    eventstore::EventStore store{pool};
    constexpr int kWriters = 4, kStreamsPerWriter = 250, kBatch = 100;
    std::vector<std::thread> writers;
    std::atomic<long> next{0};
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            platform::IdGenerator ids;
            auto trace = ids.new_trace();
            std::vector<std::int64_t> versions(kStreamsPerWriter, 0);
            for (long i = 0;; ++i) {
                const long from = next.fetch_add(kBatch);
                if (from >= count) return;
                const auto k = static_cast<std::size_t>(i % kStreamsPerWriter);
                std::vector<eventstore::NewEvent> batch;
                for (long b = from; b < std::min(count, from + kBatch); ++b) {
                    batch.push_back(
                        {ids.uuid_v4(),
                         "StockReceived",
                         {{"sku", "sku-1"}, {"quantity", 1}},
                         {trace.trace_id_hex(), trace.span_id_hex(), "c", "c", "cmd", "bench"}});
                }
                const auto expected = versions[k] == 0
                                          ? eventstore::ExpectedVersion::no_stream()
                                          : eventstore::ExpectedVersion::exact(versions[k]);
                versions[k] = store
                                  .append("bench-w" + std::to_string(w) + "s" + std::to_string(k),
                                          expected, batch)
                                  .last_version;
            }
        });
    }
    for (auto& t : writers) t.join();
}

// Every event of the store in commit order, as the relay would publish it under `prefix`.
std::vector<eventstore::WireMessage> wire_messages(platform::pg::Pool& pool,
                                                   const std::string& prefix, int partitions) {
    eventstore::EventStore store{pool};
    std::vector<eventstore::WireMessage> out;
    std::map<int, eventstore::Checkpoint> previous;
    eventstore::Checkpoint after{};
    for (;;) {
        auto events = store.read_all(after, 5000);
        if (events.empty()) return out;
        for (const auto& e : events) {
            const int partition = platform::partition_of(e.stream_id, partitions);
            auto& last = previous[partition];
            out.push_back(eventstore::encode_wire(e, prefix, partition, last));
            last = e.checkpoint();
        }
        after = events.back().checkpoint();
    }
}

void check(natsStatus status, const char* what) {
    if (status != NATS_OK)
        throw std::runtime_error(std::string{what} + ": " + natsStatus_GetText(status));
}

// The raw baseline: `messages` through js_PublishMsgAsync with at most `window` unacknowledged
// at once, until every one is acknowledged. Returns messages per second.
double raw_publish(const platform::nats::ClientSettings& settings,
                   const std::vector<eventstore::WireMessage>& messages, std::size_t window) {
    struct Acks {
        std::atomic<long> ok{0}, failed{0};
    } acks;
    natsOptions* options = nullptr;
    check(natsOptions_Create(&options), "natsOptions_Create");
    natsConnection* conn = nullptr;
    jsCtx* js = nullptr;
    try {
        platform::nats::apply(options, settings);
        check(natsConnection_Connect(&conn, options), "connecting to NATS");
        jsOptions js_options;
        jsOptions_Init(&js_options);
        js_options.PublishAsync.MaxPending = static_cast<int64_t>(window);
        js_options.PublishAsync.StallWait = 30000;
        js_options.PublishAsync.AckHandler = [](jsCtx*, natsMsg* msg, jsPubAck*, jsPubAckErr* error,
                                                void* closure) {
            auto& a = *static_cast<Acks*>(closure);
            (error ? a.failed : a.ok)++;
            natsMsg_Destroy(msg);
        };
        js_options.PublishAsync.AckHandlerClosure = &acks;
        check(natsConnection_JetStream(&js, conn, &js_options), "natsConnection_JetStream");

        jsPubOptions each;  // the relay's acknowledgement bound, as the relay gives it
        jsPubOptions_Init(&each);
        each.MaxWait = 5000;
        const auto started = Clock::now();
        for (const auto& m : messages) {
            natsMsg* msg = nullptr;
            check(natsMsg_Create(&msg, m.subject.c_str(), nullptr, m.body.data(),
                                 static_cast<int>(m.body.size())),
                  "natsMsg_Create");
            for (const auto& [name, value] : m.headers) {
                if (value.empty()) continue;  // as the relay's client: an empty header is not sent
                if (auto status = natsMsgHeader_Set(msg, name.c_str(), value.c_str());
                    status != NATS_OK) {
                    natsMsg_Destroy(msg);
                    check(status, "natsMsgHeader_Set");
                }
            }
            if (auto status = js_PublishMsgAsync(js, &msg, &each); status != NATS_OK) {
                natsMsg_Destroy(msg);
                check(status, "js_PublishMsgAsync");
            }
        }
        jsPubOptions complete;
        jsPubOptions_Init(&complete);
        complete.MaxWait = 60000;
        check(js_PublishAsyncComplete(js, &complete), "js_PublishAsyncComplete");
        const double elapsed = seconds_since(started);
        if (acks.failed > 0 || acks.ok != static_cast<long>(messages.size()))
            throw std::runtime_error("raw publish: " + std::to_string(acks.ok.load()) + " of " +
                                     std::to_string(messages.size()) + " acknowledged, " +
                                     std::to_string(acks.failed.load()) + " failed");
        jsCtx_Destroy(js);
        natsConnection_Destroy(conn);
        natsOptions_Destroy(options);
        return static_cast<double>(messages.size()) / elapsed;
    } catch (...) {
        if (js) {
            // No acknowledgement handler may run after `acks` is gone.
            jsPubOptions drain;
            jsPubOptions_Init(&drain);
            drain.MaxWait = 10000;
            js_PublishAsyncComplete(js, &drain);
            jsCtx_Destroy(js);
        }
        if (conn) natsConnection_Destroy(conn);
        natsOptions_Destroy(options);
        throw;
    }
}

// A JetStream client as the benchmark's own code uses it: connected, or an error.
std::unique_ptr<platform::jetstream::Client> connect(const platform::nats::ClientSettings& nats) {
    auto client =
        std::make_unique<platform::jetstream::Client>(nats, platform::Logger::null_logger());
    for (int i = 0; i < 100 && !client->connected(); ++i) std::this_thread::sleep_for(50ms);
    if (!client->connected()) throw std::runtime_error("cannot reach NATS");
    return client;
}

// The relay from an empty checkpoint until JetStream holds all `count` events; events per
// second, timed from the moment it leads. It publishes on a connection of its own; `observer`
// (another) counts the stream. Checked afterwards: exactly `count` messages, none twice.
double relay_publish(const relay::RelayOptions& options, const platform::nats::ClientSettings& nats,
                     platform::jetstream::Client& observer, long count) {
    auto publisher = connect(nats);
    platform::metrics::Registry registry;
    relay::Relay relay{options, *publisher, platform::Logger::null_logger(), registry};
    std::atomic<bool> stop{false};
    std::thread leader{[&] { relay.run(stop); }};
    // Stopped and joined however this function ends.
    struct Join {
        std::atomic<bool>& stop;
        std::thread& thread;
        ~Join() {
            stop = true;
            thread.join();
        }
    } join{stop, leader};

    auto started = Clock::now();
    while (!relay.is_leader()) {
        if (seconds_since(started) > 60) throw std::runtime_error("the relay did not lead in 60 s");
        std::this_thread::sleep_for(1ms);
    }
    started = Clock::now();
    double elapsed = 0;
    for (;;) {
        if (static_cast<long>(observer.message_count(options.stream)) >= count) {
            elapsed = seconds_since(started);
            break;
        }
        if (seconds_since(started) > 600)
            throw std::runtime_error("the relay did not publish the store within 600 s");
        std::this_thread::sleep_for(2ms);  // the measurement's own look, not the relay's
    }
    const auto stored = static_cast<long>(observer.message_count(options.stream));
    if (stored != count)
        throw std::runtime_error("the relay's stream holds " + std::to_string(stored) +
                                 " messages for " + std::to_string(count) + " events");
    return static_cast<double>(count) / elapsed;
}

// Deletes the run's JetStream streams when main ends, also when a measurement failed.
struct DeleteStreams {
    platform::jetstream::Client& client;
    std::vector<std::string> names;
    ~DeleteStreams() {
        for (const auto& n : names) {
            try {
                client.delete_stream(n);
            } catch (const std::exception& e) {
                std::fprintf(stderr, "bench/relay: deleting stream %s: %s\n", n.c_str(), e.what());
            }
        }
    }
};

}  // namespace

int main() try {
    const auto events_setting = platform::env("ORDO_BENCH_EVENTS").value_or("100000");
    long count = 0;
    if (std::sscanf(events_setting.c_str(), "%ld", &count) != 1 || count < 1000 ||
        count > 10'000'000 || std::to_string(count) != events_setting)
        throw std::runtime_error(
            "ORDO_BENCH_EVENTS must be a whole number from 1000 to "
            "10000000, not " +
            events_setting);
    const bench::ScratchDatabase db{"relay"};
    const auto tag = db.name().substr(db.name().size() - 8);
    platform::pg::Pool pool{{.url = db.url("ORDO_COMMAND_DATABASE_URL"),
                             .size = 4,
                             .preparers = {&eventstore::EventStore::prepare}}};

    // The services' own NATS users may use only the default stream: the administrator
    // publishes every run here, the relay's run included.
    const platform::nats::ClientSettings nats{required("ORDO_NATS_ADMIN_URL"),
                                              platform::env("ORDO_NATS_CA_FILE").value_or("")};
    auto observer = connect(nats);
    auto& client = *observer;

    relay::RelayOptions relay_options;
    const auto fill_started = Clock::now();
    fill(pool, count);
    const double fill_seconds = seconds_since(fill_started);

    DeleteStreams streams{client, {}};
    auto stream_for = [&](const std::string& run) {
        const auto name = "BENCH_RELAY_" + tag + "_" + run;
        const auto prefix = "benchrelay" + tag + run + ".events";
        client.ensure_stream({.name = name,
                              .subjects = {prefix + ".>"},
                              .duplicate_window = relay_options.duplicate_window,
                              .max_age = std::chrono::hours{1}});
        streams.names.push_back(name);
        return std::pair{name, prefix};
    };
    auto raw_run = [&](const std::string& run) {
        auto [name, prefix] = stream_for(run);
        const auto messages = wire_messages(pool, prefix, relay_options.partitions);
        if (static_cast<long>(messages.size()) != count)
            throw std::runtime_error("the store holds " + std::to_string(messages.size()) +
                                     " events, not " + std::to_string(count));
        const double rate = raw_publish(nats, messages, relay_options.window);
        if (static_cast<long>(client.message_count(name)) != count)
            throw std::runtime_error("the raw run's stream does not hold every message once");
        return rate;
    };

    const double raw1 = raw_run("raw1");
    auto [relay_stream, relay_prefix] = stream_for("relay");
    relay_options.database_url = db.url("ORDO_RELAY_DATABASE_URL");
    relay_options.stream = relay_stream;
    relay_options.subject_prefix = relay_prefix;
    relay_options.duplicate_window = std::chrono::seconds{120};
    relay_options.max_age = std::chrono::hours{1};
    relay_options.instance = "bench";
    const double relayed = relay_publish(relay_options, nats, client, count);
    const double raw2 = raw_run("raw2");
    const double raw = (raw1 + raw2) / 2;

    std::printf(
        "relay benchmark: %ld events in the store (appended at %.0f events/s in batches of 100), "
        "published to JetStream with %zu unacknowledged at once; %u cores\n",
        count, static_cast<double>(count) / fill_seconds, relay_options.window,
        std::thread::hardware_concurrency());
    // Columns are two or more spaces apart (bench/all.sh splits on that).
    std::printf("%-40s  %12s  %8s\n", "run", "events/s", "ratio");
    std::printf("%-40s  %12.0f  %8s\n", "raw JetStream async publish, before", raw1, "");
    std::printf("%-40s  %12.0f  %8.2f\n", "ordo relay, store -> JetStream", relayed, relayed / raw);
    std::printf("%-40s  %12.0f  %8s\n", "raw JetStream async publish, after", raw2, "");
    std::printf("ratio: the relay's rate over the mean of the two raw runs (%.0f events/s)\n", raw);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "bench/relay: %s\n", e.what());
    return 1;
}
