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

TEST(EventFeed, AnEventShowsItsPositionAsTheTokenClientsResumeFrom) {
    auto j = event_json(event("order", "OrderPlaced"));
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
    auto text = sse_event(e);
    ASSERT_EQ(text.rfind("id: 7001.42\ndata: ", 0), 0U) << text;
    ASSERT_EQ(text.substr(text.size() - 2), "\n\n");
    auto data = text.substr(std::string{"id: 7001.42\ndata: "}.size());
    data.resize(data.size() - 2);
    // A line break inside the payload is escaped: the data is one line.
    EXPECT_EQ(data.find('\n'), std::string::npos);
    EXPECT_EQ(nlohmann::json::parse(data), event_json(e));
}

TEST(EventFeed, HeartbeatsAndTheEndDispatchNoEventMessage) {
    EXPECT_EQ(sse_heartbeat({9, 10}), ": heartbeat\nid: 9.10\n\n");
    EXPECT_EQ(sse_retry(2000), "retry: 2000\n\n");
    auto end = sse_end("slow_consumer", "too \"slow\"");
    ASSERT_EQ(end.rfind("event: end\ndata: ", 0), 0U);
    auto data = end.substr(std::string{"event: end\ndata: "}.size());
    data.resize(data.size() - 2);
    auto j = nlohmann::json::parse(data);
    EXPECT_EQ(j.at("type"), "slow_consumer");
    EXPECT_EQ(j.at("detail"), "too \"slow\"");
}

}  // namespace
}  // namespace ordo::query
