// The events API against real PostgreSQL: pages through all events in commit order, the live
// stream resumed across many killed connections without a gap or a repeat, filters, heartbeats,
// a reader too slow cut off with its reason, the subscriber bound, and the memory of 1,000
// idle subscribers.
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <random>
#include <thread>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/query_stack.hpp"
#include "tests/support/sse_client.hpp"

namespace ordo::query {
namespace {

using namespace std::chrono_literals;
using eventstore::Checkpoint;
using eventstore::ExpectedVersion;
using eventstore::NewEvent;
using nlohmann::json;
using testing::QueryStack;
using testing::SseClient;

NewEvent event(std::string type, json payload = json::object()) {
    return NewEvent{platform::new_uuid(), std::move(type), std::move(payload), {}};
}

// A query stack and a writer on the command role, whose appends notify as the command
// service's do.
class EventsApiTest : public ::testing::Test {
   protected:
    explicit EventsApiTest(Subscriptions::Options options = {},
                           platform::http::ServerOptions server = {})
        : stack_{server, std::nullopt, 1024, options},
          notifier_{stack_.database().command_url(), platform::Logger::null_logger()},
          writer_{{.url = stack_.database().command_url(),
                   .size = 4,
                   .preparers = {&eventstore::EventStore::prepare}}},
          store_{writer_, &notifier_} {}

    // Every event of the store, in commit order, once `count` are readable.
    std::vector<eventstore::RecordedEvent> history(std::size_t count) {
        return testing::read_all_until(store_, {}, count);
    }

    int consume_across_kills(int batches);

    // 1,600 events of 8 KiB: more than the sockets on both sides of a stream hold.
    void append_bulk() {
        const std::string filler(8 * 1024, 'x');
        for (int b = 0; b < 16; ++b) {
            std::vector<NewEvent> batch;
            for (int i = 0; i < 100; ++i) batch.push_back(event("Bulk", {{"filler", filler}}));
            store_.append("order-bulk" + std::to_string(b), ExpectedVersion::any(), batch);
        }
    }

    QueryStack stack_;
    eventstore::AppendNotifier notifier_;
    platform::pg::Pool writer_;
    eventstore::EventStore store_;
};

// What a reader that was cut off received: data messages compared with `stored` from index
// `from` on (in order, no gap, no repeat), until the end message or the connection's end.
struct CutOff {
    std::size_t received = 0;  // index into `stored` after the last event received
    bool in_order = true;
    std::optional<testing::SseMessage> last;
};

// Everything a client is sent until the end message or the connection's end. A reader
// cut off must start reading within the server's linger (2 s) to get the end message, so
// tests drain first and look at the store afterwards.
std::vector<testing::SseMessage> drain(SseClient& client) {
    std::vector<testing::SseMessage> messages;
    while (auto message = client.next(10s)) {
        messages.push_back(*message);
        if (message->event == "end") break;
    }
    return messages;
}

CutOff compare(const std::vector<testing::SseMessage>& messages,
               const std::vector<eventstore::RecordedEvent>& stored, std::size_t from) {
    CutOff out{from, true, std::nullopt};
    for (const auto& message : messages) {
        out.last = message;
        if (message.event == "end") break;
        if (!message.has_data) continue;
        if (out.received >= stored.size() ||
            message.id != stored[out.received].checkpoint().token()) {
            out.in_order = false;
            break;
        }
        ++out.received;
    }
    return out;
}

CutOff read_until_end(SseClient& client, const std::vector<eventstore::RecordedEvent>& stored,
                      std::size_t from) {
    return compare(drain(client), stored, from);
}

// The data events of a stream, as (position, event) pairs; heartbeats only move `last`.
struct Received {
    std::vector<std::string> positions;
    std::vector<json> events;
    std::string last;  // the id to resume from
};

TEST_F(EventsApiTest, PagesThroughEveryEventInCommitOrderAndFilters) {
    for (int i = 0; i < 10; ++i) {
        store_.append("order-" + std::to_string(i % 3), ExpectedVersion::any(),
                      {event("OrderPlaced", {{"n", i}})});
        store_.append("inventory-" + std::to_string(i % 2), ExpectedVersion::any(),
                      {event(i % 2 ? "StockReceived" : "StockReserved", {{"n", i}}),
                       event("StockReceived", {{"m", i}})});
    }
    auto stored = history(30);
    ASSERT_EQ(stored.size(), 30U);

    auto client = stack_.client();
    std::vector<std::string> paged;
    std::string after = "0.0";
    for (int page = 0; page < 10; ++page) {
        auto r = client.get("/v1/events?limit=7&after=" + after);
        ASSERT_EQ(r.status, 200) << r.body;
        auto body = r.json();
        for (const auto& e : body.at("events")) paged.push_back(e.at("position"));
        after = body.at("next_after");
        if (body.at("events").size() < 7) break;
    }
    std::vector<std::string> expected;
    for (const auto& e : stored) expected.push_back(e.checkpoint().token());
    EXPECT_EQ(paged, expected);
    // A short page has read up to the head: going on from it finds nothing more.
    EXPECT_EQ(after, stored.back().checkpoint().token());
    auto empty = client.get("/v1/events?after=" + after).json();
    EXPECT_TRUE(empty.at("events").empty());
    EXPECT_EQ(empty.at("next_after"), after);

    auto page = client.get("/v1/events?category=inventory&type=StockReceived&limit=1000").json();
    std::vector<std::string> filtered;
    for (const auto& e : page.at("events")) {
        EXPECT_EQ(e.at("category"), "inventory");
        EXPECT_EQ(e.at("type"), "StockReceived");
        filtered.push_back(e.at("position"));
    }
    std::vector<std::string> wanted;
    for (const auto& e : stored) {
        if (e.category == "inventory" && e.type == "StockReceived")
            wanted.push_back(e.checkpoint().token());
    }
    EXPECT_EQ(filtered, wanted);
    EXPECT_EQ(wanted.size(), 15U);

    auto first = page.at("events").at(0);
    EXPECT_EQ(first.at("stream"), "inventory-0");
    EXPECT_TRUE(first.at("payload").contains("m"));
    EXPECT_EQ(first.at("schema_version"), 1);
}

TEST_F(EventsApiTest, RefusesBadParametersNamingEachAndChangesNothing) {
    auto client = stack_.client();
    auto r = client.get("/v1/events?after=12&limit=0&category=a%20b&bogus=1");
    ASSERT_EQ(r.status, 422) << r.body;
    std::vector<std::string> fields;
    const auto body = r.json();
    for (const auto& e : body.at("errors")) fields.push_back(e.at("field"));
    std::sort(fields.begin(), fields.end());
    EXPECT_EQ(fields, (std::vector<std::string>{"query.after", "query.bogus", "query.category",
                                                "query.limit"}));
    std::string many = "t0";
    for (int i = 1; i <= 32; ++i) many += ",t" + std::to_string(i);
    EXPECT_EQ(client.get("/v1/events?type=" + many).status, 422);

    SseClient bad{stack_.port(), "/v1/events/stream", {{"Last-Event-ID", "not-a-position"}}};
    ASSERT_EQ(bad.status(), 422);
    EXPECT_NE(bad.body().find("Last-Event-ID"), std::string::npos);
    EXPECT_EQ(stack_.subscriptions().subscribers(), 0U);
}

// Appends `batches` batches from a thread while one consumer reads a few events at a time,
// is killed (a reset) and comes back with Last-Event-ID, until it has every event; then
// compares what it saw with the store's commit order. Returns how often it was killed.
int EventsApiTest::consume_across_kills(int batches) {
    std::size_t total = 0;
    std::vector<std::size_t> sizes;
    for (int b = 0; b < batches; ++b) sizes.push_back(1 + b % 4);
    for (auto s : sizes) total += s;
    // Appends go on while the consumer is killed and comes back.
    std::thread writer{[&] {
        for (int b = 0; b < batches; ++b) {
            std::vector<NewEvent> batch;
            for (std::size_t i = 0; i < sizes[b]; ++i) batch.push_back(event("Tick", {{"b", b}}));
            store_.append((b % 2 ? "order-" : "inventory-") + std::to_string(b % 7),
                          ExpectedVersion::any(), batch);
            if (b % 10 == 0) std::this_thread::sleep_for(20ms);  // spreads the appends out
        }
    }};
    std::mt19937 random{20261205};
    Received got;
    int kills = 0;
    const auto bound = std::chrono::steady_clock::now() + 240s;
    while (got.positions.size() < total && std::chrono::steady_clock::now() < bound) {
        std::vector<std::pair<std::string, std::string>> headers;
        if (!got.last.empty()) headers.emplace_back("Last-Event-ID", got.last);
        SseClient consumer{stack_.port(), "/v1/events/stream", headers};
        EXPECT_EQ(consumer.status(), 200) << consumer.head();
        int take = 1 + static_cast<int>(random() % 17);
        while (take > 0 && got.positions.size() < total) {
            auto message = consumer.next(30s);
            if (!message) break;
            if (!message->id.empty()) got.last = message->id;
            if (!message->has_data) continue;  // retry, heartbeats
            got.positions.push_back(message->id);
            --take;
        }
        consumer.abort();
        ++kills;
    }
    writer.join();
    auto stored = history(total);
    std::vector<std::string> expected;
    for (const auto& e : stored) expected.push_back(e.checkpoint().token());
    EXPECT_EQ(expected.size(), total);
    EXPECT_EQ(got.positions, expected);
    return kills;
}

TEST_F(EventsApiTest, AConsumerKilledAndReconnectedManyTimesSeesEveryEventOnceInOrder) {
    EXPECT_GE(consume_across_kills(120), 20);
}

// A subscriber resuming from a page's next_after, ahead of where the stream's thread has read,
// while another subscriber is live: it gets what comes after, and nothing twice.
TEST_F(EventsApiTest, AStreamResumedAheadOfTheSharedReadRepeatsNothing) {
    store_.append("order-0", ExpectedVersion::any(), {event("OrderPlaced")});
    SseClient live{stack_.port(), "/v1/events/stream"};
    ASSERT_EQ(live.status(), 200);
    std::optional<testing::SseMessage> first;
    while ((first = live.next()) && !first->has_data) {
    }
    ASSERT_TRUE(first);
    for (int i = 1; i <= 5; ++i) {
        store_.append("order-" + std::to_string(i), ExpectedVersion::any(), {event("OrderPlaced")});
    }
    ASSERT_EQ(history(6).size(), 6U);
    const std::string next = stack_.client().get("/v1/events").json().at("next_after");
    SseClient resumed{stack_.port(), "/v1/events/stream?after=" + next};
    ASSERT_EQ(resumed.status(), 200);
    store_.append("order-after", ExpectedVersion::any(), {event("OrderPlaced")});
    std::optional<testing::SseMessage> m;
    while ((m = resumed.next()) && !m->has_data) {
    }
    ASSERT_TRUE(m);
    EXPECT_EQ(json::parse(m->data).at("stream"), "order-after");
}

class EventsApiSmallPages : public EventsApiTest {
   protected:
    EventsApiSmallPages() : EventsApiTest(Subscriptions::Options{.page = 3}) {}
};

// Pages of three: every read, shared or catching up, comes back full most of the time.
TEST_F(EventsApiSmallPages, AConsumerKilledAndReconnectedSeesEveryEventOnceThroughFullPages) {
    EXPECT_GE(consume_across_kills(60), 10);
}

// An order placed before prices named their currency reads in today's shape, paged and
// streamed alike; the stored row keeps its old shape.
TEST_F(EventsApiTest, OldShapeEventsComeInTheCurrentShape) {
    json v1 = {{"order_id", "o-old"},
               {"customer_id", "c-1"},
               {"account_id", "a-1"},
               {"lines", json::array({{{"sku", "sku-a"}, {"quantity", 2}, {"unit_price", 150}}})},
               {"total", 300}};
    store_.append("order-o-old", ExpectedVersion::no_stream(),
                  {NewEvent{platform::new_uuid(), "OrderPlaced", v1, {}, 1}});
    auto stored = history(1);
    ASSERT_EQ(stored.size(), 1U);
    ASSERT_EQ(stored[0].schema_version, 1);
    const json price = {{"amount", 150}, {"currency", "EUR"}};

    auto page = stack_.client().get("/v1/events?type=OrderPlaced").json();
    ASSERT_EQ(page.at("events").size(), 1U);
    auto paged = page.at("events").at(0);
    EXPECT_EQ(paged.at("schema_version"), 2);
    EXPECT_EQ(paged.at("payload").at("lines").at(0).at("unit_price"), price);

    SseClient consumer{stack_.port(), "/v1/events/stream?type=OrderPlaced"};
    ASSERT_EQ(consumer.status(), 200);
    std::optional<testing::SseMessage> m;
    while ((m = consumer.next()) && !m->has_data) {
    }
    ASSERT_TRUE(m);
    EXPECT_EQ(json::parse(m->data), paged);

    // What is stored is what was written.
    EXPECT_EQ(testing::scalar(stack_.database().admin_url(),
                              "SELECT schema_version FROM ordo.events WHERE stream_id = "
                              "'order-o-old'"),
              1);
}

class EventsApiQuickHeartbeat : public EventsApiTest {
   protected:
    EventsApiQuickHeartbeat() : EventsApiTest(Subscriptions::Options{.heartbeat = 50ms}) {}
};

TEST_F(EventsApiQuickHeartbeat, AFilteredStreamGetsOnlyItsEventsAndHeartbeatsMoveItsPosition) {
    store_.append("order-1", ExpectedVersion::any(), {event("OrderPlaced")});
    store_.append("inventory-1", ExpectedVersion::any(), {event("StockReceived")});
    auto stored = history(2);
    ASSERT_EQ(stored.size(), 2U);
    SseClient consumer{stack_.port(), "/v1/events/stream?category=inventory"};
    ASSERT_EQ(consumer.status(), 200);
    EXPECT_NE(consumer.head().find("text/event-stream"), std::string::npos);
    std::optional<testing::SseMessage> first;
    while ((first = consumer.next()) && !first->has_data) {
    }
    ASSERT_TRUE(first);
    EXPECT_EQ(json::parse(first->data).at("type"), "StockReceived");
    EXPECT_EQ(first->id, stored[1].checkpoint().token());

    // Only orders from here: the stream sends none, but its heartbeats' ids pass them.
    store_.append("order-2", ExpectedVersion::any(), {event("OrderPlaced")});
    auto later = history(3);
    ASSERT_EQ(later.size(), 3U);
    const auto order = later[2].checkpoint();
    bool passed = false;
    for (int i = 0; i < 200 && !passed; ++i) {
        auto message = consumer.next();
        ASSERT_TRUE(message);
        ASSERT_FALSE(message->has_data) << "an order reached an inventory stream";
        auto at = Checkpoint::parse_token(message->id);
        passed = message->comment && at && *at >= order;
    }
    EXPECT_TRUE(passed);
    store_.append("inventory-2", ExpectedVersion::any(), {event("StockReserved")});
    std::optional<testing::SseMessage> next;
    while ((next = consumer.next()) && !next->has_data) {
    }
    ASSERT_TRUE(next);
    EXPECT_EQ(json::parse(next->data).at("stream"), "inventory-2");
}

class EventsApiLongPoll : public EventsApiTest {
   protected:
    EventsApiLongPoll() : EventsApiTest(Subscriptions::Options{.poll = 10min}) {}
};

// A round that read the store's newest visible event while a later one was hidden by a
// transaction open elsewhere, which appends nothing: when that transaction ends, which
// notifies no one, the hidden event is sent soon, not at the next poll (ten minutes here).
TEST_F(EventsApiLongPoll, AnEventHiddenFromARoundIsSentWhenTheHorizonPassesUnannounced) {
    store_.append("order-seen", ExpectedVersion::any(), {event("OrderPlaced")});
    ASSERT_EQ(history(1).size(), 1U);
    pqxx::connection holder{stack_.database().admin_url()};
    pqxx::work hold{holder};
    hold.exec("SELECT pg_current_xact_id()");
    // Its notification comes while it is hidden, before the subscriber does.
    store_.append("order-hidden", ExpectedVersion::any(), {event("OrderPlaced")});

    SseClient consumer{stack_.port(), "/v1/events/stream"};
    ASSERT_EQ(consumer.status(), 200);
    auto next_data = [&] {
        std::optional<testing::SseMessage> message;
        while ((message = consumer.next(30s)) && !message->has_data) {
        }
        return message;
    };
    const auto seen = next_data();
    ASSERT_TRUE(seen);
    EXPECT_EQ(json::parse(seen->data).at("stream"), "order-seen");
    hold.commit();
    const auto hidden = next_data();
    ASSERT_TRUE(hidden) << "the hidden event waited for the poll";
    EXPECT_EQ(json::parse(hidden->data).at("stream"), "order-hidden");
}

class EventsApiSmallBuffers : public EventsApiTest {
   protected:
    EventsApiSmallBuffers()
        : EventsApiTest(Subscriptions::Options{.capacity = 2, .max_buffered = 256 * 1024}) {}
};

TEST_F(EventsApiSmallBuffers, AReaderThatDoesNotKeepUpIsCutOffAndToldWhy) {
    store_.append("order-0", ExpectedVersion::any(), {event("OrderPlaced")});
    // A reader with a small window that reads its first event, then nothing for a while.
    SseClient slow{stack_.port(), "/v1/events/stream", {}, 4096};
    ASSERT_EQ(slow.status(), 200);
    std::optional<testing::SseMessage> first;
    while ((first = slow.next()) && !first->has_data) {
    }
    ASSERT_TRUE(first);
    // Live now: a burst far beyond its buffer and the sockets', which it does not read
    // until it is cut off.
    append_bulk();
    ASSERT_TRUE(testing::eventually([&] { return stack_.subscriptions().subscribers() == 0; }));
    // It reads what it was sent: a gap-free run of events, then the end and why. (At once,
    // before the store: the end message waits for it two seconds at most.)
    const auto received = drain(slow);
    auto stored = history(1601);
    auto cut = compare(received, stored, 1);
    ASSERT_TRUE(cut.in_order) << "a gap or a repeat at event " << cut.received;
    ASSERT_TRUE(cut.last);
    EXPECT_EQ(cut.last->event, "end");
    EXPECT_EQ(json::parse(cut.last->data).at("type"), "slow_consumer");
    EXPECT_LT(cut.received, stored.size()) << "it was cut off before the end of the burst";
    EXPECT_FALSE(slow.next(5s));
    EXPECT_TRUE(slow.closed());
}

TEST_F(EventsApiSmallBuffers, RefusesSubscribersBeyondItsBoundWithRetryAfter) {
    SseClient one{stack_.port(), "/v1/events/stream"};
    SseClient two{stack_.port(), "/v1/events/stream"};
    ASSERT_EQ(one.status(), 200);
    ASSERT_EQ(two.status(), 200);
    SseClient three{stack_.port(), "/v1/events/stream"};
    ASSERT_EQ(three.status(), 503);
    EXPECT_NE(three.head().find("Retry-After: 5"), std::string::npos);
    ASSERT_TRUE(testing::eventually([&] { return stack_.subscriptions().subscribers() == 2; }));
    one.abort();
    ASSERT_TRUE(testing::eventually([&] { return stack_.subscriptions().subscribers() <= 1; }));
    SseClient four{stack_.port(), "/v1/events/stream"};
    EXPECT_EQ(four.status(), 200);
}

class EventsApiStall : public EventsApiTest {
   protected:
    EventsApiStall() : EventsApiTest(Subscriptions::Options{.stall = 500ms}) {}
};

// A reader catching up that reads nothing at all is not kept for ever: once nothing has been
// written to it for `stall`, it is cut off, told why after what it did receive.
TEST_F(EventsApiStall, AReaderThatReadsNothingIsCutOffOnceItStalls) {
    append_bulk();
    auto stored = history(1600);
    ASSERT_EQ(stored.size(), 1600U);
    SseClient stuck{stack_.port(), "/v1/events/stream", {}, 4096};
    ASSERT_EQ(stuck.status(), 200);
    ASSERT_TRUE(testing::eventually([&] { return stack_.subscriptions().subscribers() == 1; }));
    ASSERT_TRUE(testing::eventually([&] { return stack_.subscriptions().subscribers() == 0; }));
    auto cut = read_until_end(stuck, stored, 0);
    ASSERT_TRUE(cut.in_order) << "a gap or a repeat at event " << cut.received;
    ASSERT_TRUE(cut.last);
    EXPECT_EQ(cut.last->event, "end");
    EXPECT_NE(json::parse(cut.last->data).at("detail").get<std::string>().find("read nothing"),
              std::string::npos);
    EXPECT_LT(cut.received, stored.size());
}

// VmRSS of this process in KiB.
long resident_kib() {
    std::ifstream status{"/proc/self/status"};
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return 0;
}

class EventsApiManySubscribers : public EventsApiTest {
   protected:
    static platform::http::ServerOptions server() {
        platform::http::ServerOptions options;
        options.max_connections = 4096;
        options.max_connections_per_client = 4096;
        return options;
    }
    EventsApiManySubscribers() : EventsApiTest({.capacity = 2048}, server()) {}
};

TEST_F(EventsApiManySubscribers, KeepsAThousandIdleSubscribersAndMeasuresTheirMemory) {
    constexpr std::size_t kSubscribers = 1000;
    rlimit files{};
    ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
    if (files.rlim_cur < 4 * kSubscribers) {
        files.rlim_cur = std::min<rlim_t>(files.rlim_max, 8 * kSubscribers);
        ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &files), 0);
    }
    if (files.rlim_cur < 2 * kSubscribers + 200) {
        GTEST_SKIP() << "needs " << 2 * kSubscribers + 200 << " open files, the limit is "
                     << files.rlim_cur;
    }
    store_.append("order-0", ExpectedVersion::any(), {event("OrderPlaced")});
    auto start = history(1);
    ASSERT_EQ(start.size(), 1U);
    const std::string from = start[0].checkpoint().token();
    // One subscriber first, so what every server and client has once is outside the figure.
    SseClient warm{stack_.port(), "/v1/events/stream?after=" + from};
    ASSERT_EQ(warm.status(), 200);
    ASSERT_TRUE(testing::eventually([&] { return stack_.subscriptions().subscribers() == 1; }));
    const long before = resident_kib();
    std::vector<std::unique_ptr<SseClient>> idle;
    // In waves no larger than the server's request queue, as clients that connect over time.
    for (std::size_t wave = 0; wave < kSubscribers; wave += 100) {
        for (std::size_t i = wave; i < std::min(kSubscribers, wave + 100); ++i) {
            idle.push_back(
                std::make_unique<SseClient>(stack_.port(), "/v1/events/stream?after=" + from));
        }
        for (std::size_t i = wave; i < idle.size(); ++i) ASSERT_EQ(idle[i]->status(), 200);
    }
    ASSERT_TRUE(testing::eventually(
        [&] { return stack_.subscriptions().subscribers() == kSubscribers + 1; }));
    const long after = resident_kib();
    const double per = static_cast<double>(after - before) / kSubscribers;
    std::cout << "memory of " << kSubscribers << " idle subscribers: " << (after - before)
              << " KiB, " << per << " KiB each (server and test client in one process)\n";
    ::testing::Test::RecordProperty("kib_per_subscriber", std::to_string(per));
#if !defined(__SANITIZE_ADDRESS__)
    EXPECT_LT(per, 64.0);
#endif
    // Idle, yet live: one append reaches every one of them.
    store_.append("order-1", ExpectedVersion::any(), {event("OrderPlaced", {{"to", "all"}})});
    for (auto& c : idle) {
        std::optional<testing::SseMessage> m;
        while ((m = c->next()) && !m->has_data) {
        }
        ASSERT_TRUE(m);
        EXPECT_EQ(json::parse(m->data).at("stream"), "order-1");
    }
}

}  // namespace
}  // namespace ordo::query
