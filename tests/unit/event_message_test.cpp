#include "eventstore/event_message.hpp"

#include <gtest/gtest.h>

namespace ordo::eventstore {
namespace {

RecordedEvent sample() {
    Metadata metadata;
    metadata.trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    metadata.span_id = "00f067aa0ba902b7";
    metadata.actor = "loader";
    return RecordedEvent{42,
                         7,
                         "inventory-sku-1",
                         "inventory",
                         3,
                         "e-1",
                         "StockReceived",
                         1,
                         {{"sku", "sku-1"}, {"quantity", 5}},
                         metadata,
                         "2026-12-04T03:00:00.000001Z"};
}

TEST(EventMessage, WhatTheRelayWritesTheConsumersReadBack) {
    auto message = to_message(sample(), 3, "6.40");
    EXPECT_EQ(message.headers.at("Nats-Msg-Id"), "e-1");
    EXPECT_EQ(message.headers.at("ordo-order-key"), sample().checkpoint().token());
    EXPECT_EQ(message.headers.at("traceparent"),
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    EXPECT_EQ(message.headers.at("ordo-partition"), "3");

    auto read = from_message(message);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->key, sample().checkpoint());
    EXPECT_EQ(read->previous, *Checkpoint::parse_token("6.40"));
    EXPECT_EQ(read->event.event_id, "e-1");
    EXPECT_EQ(read->event.payload, sample().payload);
    EXPECT_EQ(read->event.metadata.actor, "loader");
    EXPECT_EQ(read->event.recorded_at, sample().recorded_at);
}

TEST(EventMessage, APartitionsFirstEventHasNoPredecessor) {
    auto read = from_message(to_message(sample(), 0, ""));
    ASSERT_TRUE(read);
    EXPECT_EQ(read->previous, Checkpoint{});
}

TEST(EventMessage, AnythingElseReadsAsNothing) {
    auto good = to_message(sample(), 0, "");
    auto without_key = good;
    without_key.headers.erase("ordo-order-key");
    auto bad_key = good;
    bad_key.headers["ordo-order-key"] = "x.y";
    auto not_json = good;
    not_json.data = "{";
    auto missing_field = good;
    missing_field.data = R"({"stream":"s"})";
    auto wrong_type = good;
    for (const auto& m : {without_key, bad_key, not_json, missing_field}) {
        EXPECT_FALSE(from_message(m));
    }
    auto j = nlohmann::json::parse(good.data);
    j["version"] = "three";
    wrong_type.data = j.dump();
    EXPECT_FALSE(from_message(wrong_type));
    // Found in review: numbers that are not integers, and a negative position (which no
    // checkpoint token can carry), are not events either.
    for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
             {"position", 1e300}, {"position", -1}, {"version", 2.5}, {"transaction_id", 7.0}}) {
        auto k = nlohmann::json::parse(good.data);
        k[field] = value;
        auto odd = good;
        odd.data = k.dump();
        EXPECT_FALSE(from_message(odd)) << field << "=" << value.dump();
    }
}

}  // namespace
}  // namespace ordo::eventstore
