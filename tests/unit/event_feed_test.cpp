// The events API's pure parts: selections, the event's JSON, and the server-sent-events framing.
#include "query/event_feed.hpp"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

namespace ordo::query {
namespace {

eventstore::RecordedEvent event(std::string category, std::string type) {
    eventstore::RecordedEvent e{};
    e.position = 42;
    e.transaction_id = 7001;
    e.category = category;
    e.stream_id = category + "-1";
    e.version = 3;
    e.event_id = "5b0f3c1e-0000-4000-8000-000000000001";
    e.type = std::move(type);
    e.schema_version = 2;
    e.payload = {{"text", "two\nlines"}};
    e.metadata.trace_id = "0af7651916cd43dd8448eb211c80319c";
    e.recorded_at = "2026-12-05T10:00:00.000000Z";
    return e;
}

TEST(EventSelection, AnEmptyListSelectsEverythingAndAListOnlyWhatItNames) {
    EXPECT_TRUE(EventSelection{}.matches(event("order", "OrderPlaced")));
    EventSelection orders{{"order"}, {}};
    EXPECT_TRUE(orders.matches(event("order", "OrderPlaced")));
    EXPECT_FALSE(orders.matches(event("inventory", "StockReceived")));
    EventSelection both{{"order", "inventory"}, {"StockReceived"}};
    EXPECT_TRUE(both.matches(event("inventory", "StockReceived")));
    EXPECT_FALSE(both.matches(event("order", "OrderPlaced")));
    EXPECT_FALSE(both.matches(event("account", "StockReceived")));
}

// Over one store a reader's position after an event is the event's own checkpoint.
FeedPosition after(const eventstore::RecordedEvent& e) {
    FeedPosition p{{0}};
    p.advance(0, e.checkpoint());
    return p;
}

TEST(EventFeed, AnEventShowsItsPositionAsTheTokenClientsResumeFrom) {
    auto j = event_json(event("order", "OrderPlaced"), after(event("order", "OrderPlaced")));
    EXPECT_EQ(j.at("position"), "7001.42");
    EXPECT_EQ(j.at("stream"), "order-1");
    EXPECT_EQ(j.at("category"), "order");
    EXPECT_EQ(j.at("version"), 3);
    EXPECT_EQ(j.at("type"), "OrderPlaced");
    EXPECT_EQ(j.at("schema_version"), 2);
    EXPECT_EQ(j.at("payload").at("text"), "two\nlines");
    EXPECT_EQ(j.at("metadata").at("trace_id"), "0af7651916cd43dd8448eb211c80319c");
    EXPECT_EQ(eventstore::Checkpoint::parse_token(j.at("position").get<std::string>()),
              (eventstore::Checkpoint{7001, 42}));
}

TEST(EventFeed, EventsComeInTheCurrentShapeOrAsStoredWhenNewerThanKnown) {
    eventstore::Upcasters upcasters;
    upcasters.add("OrderPlaced", 1, [](nlohmann::json p) {
        p["renamed"] = p.at("text");
        p.erase("text");
        return p;
    });
    auto old = event("order", "OrderPlaced");
    old.schema_version = 1;
    auto current = as_current(&upcasters, old);
    EXPECT_EQ(current.schema_version, 2);
    EXPECT_EQ(current.payload, (nlohmann::json{{"renamed", "two\nlines"}}));
    auto newer = event("order", "OrderPlaced");
    newer.schema_version = 3;
    EXPECT_EQ(as_current(&upcasters, newer).payload, newer.payload);
    EXPECT_EQ(as_current(&upcasters, newer).schema_version, 3);
    EXPECT_EQ(as_current(nullptr, old).schema_version, 1);
}

TEST(EventFeed, AnEventIsOneMessageWithItsIdAndOneDataLine) {
    auto e = event("order", "OrderPlaced");
    auto text = sse_event(e, after(e));
    ASSERT_EQ(text.rfind("id: 7001.42\ndata: ", 0), 0U) << text;
    ASSERT_EQ(text.substr(text.size() - 2), "\n\n");
    auto data = text.substr(std::string{"id: 7001.42\ndata: "}.size());
    data.resize(data.size() - 2);
    // A line break inside the payload is escaped: the data is one line.
    EXPECT_EQ(data.find('\n'), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(data), event_json(e, after(e)));
    // Made in two steps (once for many readers), each reader's position in it.
    FeedPosition two{{0, 1}};
    two.advance(1, {3, 4});
    const auto shared = sse_event(sse_body(e), two);
    ASSERT_EQ(shared.rfind("id: 0:0.0,1:3.4\ndata: ", 0), 0U) << shared;
    auto shared_data = shared.substr(std::string{"id: 0:0.0,1:3.4\ndata: "}.size());
    shared_data.resize(shared_data.size() - 2);
    EXPECT_EQ(nlohmann::json::parse(shared_data), event_json(e, two));
    EXPECT_EQ(sse_event(e, two), shared);
}

TEST(EventFeed, HeartbeatsAndTheEndDispatchNoEventMessage) {
    FeedPosition at{{0}};
    at.advance(0, {9, 10});
    EXPECT_EQ(sse_heartbeat(at), ": heartbeat\nid: 9.10\n\n");
    EXPECT_EQ(sse_retry(2000), "retry: 2000\n\n");
    auto end = sse_end("slow_consumer", "too \"slow\"");
    ASSERT_EQ(end.rfind("event: end\ndata: ", 0), 0U);
    auto data = end.substr(std::string{"event: end\ndata: "}.size());
    data.resize(data.size() - 2);
    auto j = nlohmann::json::parse(data);
    EXPECT_EQ(j.at("type"), "slow_consumer");
    EXPECT_EQ(j.at("detail"), "too \"slow\"");
}

TEST(FeedPosition, OverOneStoreItIsTheCheckpointsTokenAndOverShardsOnePerShard) {
    FeedPosition one{{0}};
    EXPECT_EQ(one.token(), "0.0");
    one.advance(0, {812, 40});
    one.advance(0, {700, 90});  // never back
    EXPECT_EQ(one.token(), "812.40");
    EXPECT_EQ(FeedPosition::parse("812.40", {0}), one);

    FeedPosition two{{1, 0}};
    EXPECT_EQ(two.shards(), (std::vector<int>{0, 1}));
    two.advance(1, {77, 9});
    EXPECT_EQ(two.token(), "0:0.0,1:77.9");
    EXPECT_EQ(FeedPosition::parse("0:0.0,1:77.9", {0, 1}), two);
    // Shards left out start at the beginning; a plain checkpoint is shard 0's.
    EXPECT_EQ(FeedPosition::parse("1:77.9", {0, 1}), two);
    auto plain = FeedPosition::parse("812.40", {0, 1});
    ASSERT_TRUE(plain);
    EXPECT_EQ(plain->at(0), (eventstore::Checkpoint{812, 40}));
    EXPECT_EQ(plain->at(1), eventstore::Checkpoint{});
}

TEST(FeedPosition, RefusesAMalformedTokenAShardTwiceOrOneNotRead) {
    for (const char* bad : {"", "x", "0:1.2,", ",0:1.2", "0:1.2,0:3.4", "2:1.2", "0:1.2;1:3.4",
                            "-1:1.2", "0:1.-2", "0:1.2,1:"}) {
        EXPECT_FALSE(FeedPosition::parse(bad, {0, 1})) << bad;
    }
    EXPECT_FALSE(FeedPosition::parse(std::string(FeedPosition::kMaxTokenSize + 1, '1'), {0}));
    EXPECT_THROW(FeedPosition({0, 0}), std::invalid_argument);
    EXPECT_THROW(FeedPosition({}), std::invalid_argument);
}

// A shard added to those a reader reads: its position keeps its place in every shard it
// named, and the new one starts at the beginning; it cannot lose a shard.
TEST(FeedPosition, OverMoreShardsKeepsEachPlaceAndStartsTheNewAtTheBeginning) {
    auto two = FeedPosition::parse("0:812.40,2:77.9", {0, 2});
    ASSERT_TRUE(two);
    const auto three = two->over({2, 1, 0});
    EXPECT_EQ(three.shards(), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(three.token(), "0:812.40,1:0.0,2:77.9");
    EXPECT_EQ(three.over({0, 1, 2}), three);
    EXPECT_EQ(FeedPosition{{0}}.over({0, 1}).token(), "0:0.0,1:0.0");
    EXPECT_THROW((void)three.over({0, 2}), std::invalid_argument);
    EXPECT_THROW((void)two->over({0, 1}), std::invalid_argument);
}

// The shards a position names, before it is checked against those read: only a well-formed
// one makes the service look at the map.
TEST(FeedPosition, NamesTheShardsOfAWellFormedTokenOnly) {
    EXPECT_EQ(FeedPosition::named_shards("812.40"), (std::vector<int>{0}));
    EXPECT_EQ(FeedPosition::named_shards("2:1.0,0:812.40"), (std::vector<int>{2, 0}));
    EXPECT_EQ(FeedPosition::named_shards("255:1.0"), (std::vector<int>{255}));
    for (const char* bad : {"", "x", "0:1.2,", "0:1.2,0:3.4", "256:1.0", "-1:1.2", "0:1.-2"}) {
        EXPECT_FALSE(FeedPosition::named_shards(bad)) << bad;
    }
}

eventstore::RecordedEvent at(std::uint64_t txid, std::int64_t position, std::string recorded) {
    auto e = event("order", "OrderPlaced");
    e.transaction_id = txid;
    e.position = position;
    e.recorded_at = std::move(recorded);
    return e;
}

TEST(MergeReads, TakesTheEarliestRecordedKeepingEachShardsCommitOrderAndGoesOnFromWhatItTook) {
    const FeedPosition from{{0, 1}};
    // Shard 0's second event was recorded before its first (its transaction started first
    // but committed later): it still comes after it.
    std::vector<ShardRead> reads{{{at(10, 1, "T03"), at(11, 2, "T01"), at(12, 3, "T06")}, {12, 3}},
                                 {{at(5, 1, "T02"), at(6, 2, "T04"), at(7, 3, "T05")}, {7, 3}}};
    auto page = merge_reads(from, reads, 4);
    std::vector<std::string> order;
    for (const auto& [e, p] : page.events) order.push_back(e.recorded_at + "@" + p.token());
    // T01 (shard 0's 2nd) brings shard 0's 1st before it; then T02 of shard 1, then T04.
    EXPECT_EQ(order, (std::vector<std::string>{"T03@0:10.1,1:0.0", "T01@0:11.2,1:0.0",
                                               "T02@0:11.2,1:5.1", "T04@0:11.2,1:6.2"}));
    EXPECT_EQ(page.next.token(), "0:11.2,1:6.2");
    // Everything taken: each shard goes on from how far it read, past what it filtered out.
    auto all = merge_reads(from, {{{at(10, 1, "T1")}, {40, 9}}, {{}, {8, 8}}}, 10);
    EXPECT_EQ(all.events.size(), 1u);
    EXPECT_EQ(all.next.token(), "0:40.9,1:8.8");
    // A page of one: shard 0's first event, brought by its second, recorded earliest.
    auto one = merge_reads(from, reads, 1);
    ASSERT_EQ(one.events.size(), 1u);
    EXPECT_EQ(one.events[0].first.recorded_at, "T03");
    EXPECT_EQ(one.next.token(), "0:10.1,1:0.0");
    // A shard that read nothing (or could not be read) keeps its place.
    FeedPosition later{{0, 1}};
    later.advance(1, {3, 3});
    EXPECT_EQ(merge_reads(later, {{{}, {}}, {{}, {3, 3}}}, 10).next, later);
}

}  // namespace
}  // namespace ordo::query
