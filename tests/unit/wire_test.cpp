// The wire codec of recorded events: what the relay encodes, consumers decode to the same
// event and chain link; anything else is refused with a reason.
#include "eventstore/wire.hpp"

#include <gtest/gtest.h>

#include <cctype>
#include <limits>

#include <nlohmann/json.hpp>

namespace ordo::eventstore {
namespace {

constexpr const char* kPrefix = "ordo.events";

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

// As a NATS subscriber hands a message over: header names folded to lower case, empty
// values not sent.
WireMessage delivered(WireMessage m) {
    std::map<std::string, std::string> headers;
    for (auto& [name, value] : m.headers) {
        if (value.empty()) continue;
        std::string lower = name;
        for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        headers[lower] = std::move(value);
    }
    m.headers = std::move(headers);
    return m;
}

std::variant<PublishedEvent, WireRefusal> decode(const WireMessage& m) {
    return decode_wire(kPrefix, m.subject, m.headers, m.body);
}

// The decoded event, or a test failure naming the refusal.
std::optional<PublishedEvent> decoded(const WireMessage& m) {
    auto result = decode(m);
    if (auto* refusal = std::get_if<WireRefusal>(&result)) {
        ADD_FAILURE() << "refused: " << refusal->reason;
        return std::nullopt;
    }
    return std::get<PublishedEvent>(std::move(result));
}

// The reason `m` is refused, or "" (and a test failure) when it decodes.
std::string refusal(const WireMessage& m) {
    auto result = decode(m);
    if (auto* refused = std::get_if<WireRefusal>(&result)) {
        EXPECT_FALSE(refused->reason.empty());
        return refused->reason;
    }
    ADD_FAILURE() << "decoded: " << m.subject << " " << m.body;
    return "";
}

WireMessage with_header(WireMessage m, const std::string& name, const std::string& value) {
    m.headers[name] = value;
    return m;
}

WireMessage with_body_field(WireMessage m, const std::string& name, const nlohmann::json& value) {
    auto j = nlohmann::json::parse(m.body);
    j[name] = value;
    m.body = j.dump();
    return m;
}

TEST(Wire, WhatTheRelayWritesTheConsumersReadBack) {
    auto message = encode_wire(sample(), kPrefix, 3, *Checkpoint::parse_token("6.40"));
    EXPECT_EQ(message.subject, "ordo.events.3.inventory");
    EXPECT_EQ(message.headers.at("Nats-Msg-Id"), "e-1");
    EXPECT_EQ(message.headers.at("ordo-order-key"), sample().checkpoint().token());
    EXPECT_EQ(message.headers.at("traceparent"),
              "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    EXPECT_EQ(message.headers.at("ordo-partition"), "3");
    EXPECT_EQ(message.headers.at("ordo-previous"), "6.40");
    EXPECT_EQ(message.headers.at("ordo-stream"), "inventory-sku-1");
    EXPECT_EQ(message.headers.at("ordo-version"), "3");
    EXPECT_EQ(message.headers.at("ordo-type"), "StockReceived");
    EXPECT_EQ(message.headers.at("ordo-recorded-at"), sample().recorded_at);

    for (const auto& m : {message, delivered(message)}) {
        auto read = decoded(m);
        ASSERT_TRUE(read);
        EXPECT_EQ(read->key, sample().checkpoint());
        EXPECT_EQ(read->previous, *Checkpoint::parse_token("6.40"));
        EXPECT_EQ(read->event.event_id, "e-1");
        EXPECT_EQ(read->event.payload, sample().payload);
        EXPECT_EQ(read->event.metadata.actor, "loader");
        EXPECT_EQ(read->event.recorded_at, sample().recorded_at);
    }
}

TEST(Wire, EveryFieldSurvivesTheRoundTrip) {
    RecordedEvent e{std::numeric_limits<std::int64_t>::max(),
                    std::numeric_limits<std::uint64_t>::max(),
                    "order-ü-1",
                    "order",
                    1234567890123,
                    "7c1e5a9e-4a51-4c8e-9f0e-3c2b1a0d9e8f",
                    "OrderPlaced",
                    -2,
                    {{"lines", {{{"sku", "a"}, {"qty", 2}}, {{"sku", "b"}, {"qty", 1.5}}}},
                     {"note", nullptr},
                     {"flag", true}},
                    Metadata{"4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7", "corr-1",
                             "cause-1", "cmd-1", "api:alice"},
                    "2026-12-04T03:00:00.123456Z"};
    const Checkpoint previous{std::numeric_limits<std::uint64_t>::max(), 17};
    auto read = decoded(delivered(encode_wire(e, kPrefix, 15, previous)));
    ASSERT_TRUE(read);
    EXPECT_EQ(read->key, e.checkpoint());
    EXPECT_EQ(read->previous, previous);
    const auto& r = read->event;
    EXPECT_EQ(r.position, e.position);
    EXPECT_EQ(r.transaction_id, e.transaction_id);
    EXPECT_EQ(r.stream_id, e.stream_id);
    EXPECT_EQ(r.category, e.category);
    EXPECT_EQ(r.version, e.version);
    EXPECT_EQ(r.event_id, e.event_id);
    EXPECT_EQ(r.type, e.type);
    EXPECT_EQ(r.schema_version, e.schema_version);
    EXPECT_EQ(r.payload, e.payload);
    EXPECT_EQ(r.metadata.trace_id, e.metadata.trace_id);
    EXPECT_EQ(r.metadata.span_id, e.metadata.span_id);
    EXPECT_EQ(r.metadata.correlation_id, e.metadata.correlation_id);
    EXPECT_EQ(r.metadata.causation_id, e.metadata.causation_id);
    EXPECT_EQ(r.metadata.command_id, e.metadata.command_id);
    EXPECT_EQ(r.metadata.actor, e.metadata.actor);
    EXPECT_EQ(r.recorded_at, e.recorded_at);
}

TEST(Wire, APartitionsFirstEventHasNoPredecessor) {
    auto message = encode_wire(sample(), kPrefix, 0, Checkpoint{});
    EXPECT_EQ(message.headers.at("ordo-previous"), "");  // not sent
    for (const auto& m : {message, delivered(message)}) {
        auto read = decoded(m);
        ASSERT_TRUE(read);
        EXPECT_EQ(read->previous, Checkpoint{});
    }
}

TEST(Wire, AnEventWithoutTraceContextCarriesNoTraceparent) {
    auto e = sample();
    e.metadata.trace_id = "not-a-trace";
    auto message = encode_wire(e, kPrefix, 0, Checkpoint{});
    EXPECT_EQ(message.headers.count("traceparent"), 0u);
    ASSERT_TRUE(decoded(message));
    EXPECT_NE(refusal(with_header(message, "traceparent",
                                  "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"))
                  .find("traceparent"),
              std::string::npos);
}

TEST(Wire, AnythingElseReadsAsNothing) {
    auto good = encode_wire(sample(), kPrefix, 0, Checkpoint{});
    auto without_key = good;
    without_key.headers.erase("ordo-order-key");
    auto bad_key = with_header(good, "ordo-order-key", "x.y");
    auto not_json = good;
    not_json.body = "{";
    auto missing_field = good;
    missing_field.body = R"({"stream":"s"})";
    for (const auto& m : {without_key, bad_key, not_json, missing_field}) refusal(m);
    refusal(with_body_field(good, "version", "three"));
    // Found in review: numbers that are not integers, and a negative position (which no
    // checkpoint token can carry), are not events either.
    for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
             {"position", 1e300}, {"position", -1}, {"version", 2.5}, {"transaction_id", 7.0}}) {
        EXPECT_NE(refusal(with_body_field(good, field, value)).find(field), std::string::npos)
            << field << "=" << value.dump();
    }
}

TEST(Wire, EveryHeaderButThePredecessorAndTraceIsRequired) {
    auto good = encode_wire(sample(), kPrefix, 0, Checkpoint{});
    for (const char* name : {"Nats-Msg-Id", "ordo-stream", "ordo-version", "ordo-type",
                             "ordo-order-key", "ordo-partition", "ordo-recorded-at"}) {
        auto m = good;
        m.headers.erase(name);
        EXPECT_EQ(refusal(m), std::string("header ") + name + " is missing");
        EXPECT_EQ(refusal(with_header(good, name, "")),
                  std::string("header ") + name + " is missing");
    }
}

TEST(Wire, HeadersThatContradictTheBodyAreRefused) {
    auto good = encode_wire(sample(), kPrefix, 2, *Checkpoint::parse_token("6.40"));
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"Nats-Msg-Id", "e-2"},
             {"ordo-stream", "inventory-sku-2"},
             {"ordo-version", "4"},
             {"ordo-version", "03"},
             {"ordo-type", "StockReserved"},
             {"ordo-order-key", "7.43"},
             {"ordo-recorded-at", "2026-12-04T03:00:00Z"},
             {"traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b8-01"}}) {
        auto reason = refusal(with_header(good, name, value));
        EXPECT_NE(reason.find(name), std::string::npos) << reason;
        EXPECT_NE(reason.find("contradicts"), std::string::npos) << reason;
    }
}

TEST(Wire, GarbledChainHeadersAreRefused) {
    auto good = encode_wire(sample(), kPrefix, 2, *Checkpoint::parse_token("6.40"));
    for (const auto& [name, value] : std::vector<std::pair<std::string, std::string>>{
             {"ordo-previous", "6.x"},
             {"ordo-previous", "7.42"},  // the event itself
             {"ordo-previous", "8.1"},   // after it
             {"ordo-order-key", "7"},
             {"ordo-partition", "x"},
             {"ordo-partition", "-2"},
             {"ordo-partition", "02"},
             {"ordo-partition", "2 "},
             {"ordo-partition", "99999999999"}}) {
        auto reason = refusal(with_header(good, name, value));
        EXPECT_NE(reason.find(name), std::string::npos) << name << "=" << value << ": " << reason;
    }
}

// A relay of another shard than 0 names its shard: the keys are in that shard's commit order.
TEST(Wire, TheShardOfTheKeysTravelsWithThemAndGarbledOnesAreRefused) {
    auto plain = encode_wire(sample(), kPrefix, 2, Checkpoint{});
    EXPECT_EQ(plain.headers.count("ordo-shard"), 0u) << "shard 0 sends none";
    auto read = decoded(plain);
    ASSERT_TRUE(read);
    EXPECT_EQ(read->shard, 0);
    auto sharded = encode_wire(sample(), kPrefix, 2, Checkpoint{}, 7);
    EXPECT_EQ(sharded.headers.at("ordo-shard"), "7");
    read = decoded(delivered(sharded));
    ASSERT_TRUE(read);
    EXPECT_EQ(read->shard, 7);
    for (const auto* value : {"0", "256", "x", "07", "-1", "1 "}) {
        auto reason = refusal(with_header(sharded, "ordo-shard", value));
        EXPECT_NE(reason.find("ordo-shard"), std::string::npos) << value << ": " << reason;
    }
}

TEST(Wire, OnlyTheRelaysSubjectForTheEventIsAccepted) {
    auto good = encode_wire(sample(), kPrefix, 2, Checkpoint{});
    for (const std::string subject :
         {"other.events.2.inventory", "ordo.events.3.inventory", "ordo.events.2.orders",
          "ordo.events.2", "ordo.events.2.inventory.x", "", "ordo.events.02.inventory"}) {
        auto m = good;
        m.subject = subject;
        auto reason = refusal(m);
        EXPECT_NE(reason.find("subject"), std::string::npos) << subject << ": " << reason;
    }
    EXPECT_TRUE(std::holds_alternative<PublishedEvent>(
        decode_wire("t1.events", "t1.events.2.inventory", good.headers, good.body)));
}

TEST(Wire, BodiesThatAreNotARecordedEventAreRefused) {
    auto good = encode_wire(sample(), kPrefix, 0, Checkpoint{});
    auto with_body = [&](std::string body) {
        auto m = good;
        m.body = std::move(body);
        return m;
    };
    EXPECT_EQ(refusal(with_body("")), "body is not JSON");
    EXPECT_EQ(refusal(with_body("{\"event_id\": ")), "body is not JSON");
    EXPECT_EQ(refusal(with_body("[1, 2]")), "body is not a JSON object");
    for (const char* field : {"event_id", "stream", "category", "version", "type", "schema_version",
                              "payload", "metadata", "recorded_at", "position", "transaction_id"}) {
        auto j = nlohmann::json::parse(good.body);
        j.erase(field);
        EXPECT_EQ(refusal(with_body(j.dump())), std::string("body lacks the field ") + field);
    }
    for (const auto& [field, value] : std::vector<std::pair<std::string, nlohmann::json>>{
             {"event_id", 1},
             {"stream", nullptr},
             {"category", nlohmann::json::array()},
             {"type", false},
             {"recorded_at", 5},
             {"metadata", "trace"},
             {"transaction_id", -7},
             {"schema_version", std::int64_t{1} << 40},
             {"position", std::numeric_limits<std::uint64_t>::max()}}) {
        auto reason = refusal(with_body_field(good, field, value));
        EXPECT_NE(reason.find(field), std::string::npos) << field << ": " << reason;
    }
}

}  // namespace
}  // namespace ordo::eventstore
