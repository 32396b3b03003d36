// The domain's event codecs: round trips, stored names and fields, malformed payloads refused.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"

namespace ordo::domain {
namespace {

using nlohmann::json;

// Encode, then decode by the recorded type: the event must come back unchanged.
template <class Event>
void expect_round_trip(const Event& event,
                       std::optional<Event> (*decode)(std::string_view, const json&)) {
    const json payload = encode_payload(event);
    const std::string type(event_type(event));
    // Through text too, as the event store keeps it.
    const auto decoded = decode(type, json::parse(payload.dump()));
    ASSERT_TRUE(decoded.has_value()) << type << " " << payload.dump();
    EXPECT_EQ(*decoded, event) << type << " " << payload.dump();
}

TEST(InventoryCodec, RoundTripsEveryEventType) {
    const inventory::Events events = {
        inventory::StockReceived{"sku-1", 5},
        inventory::StockReserved{"sku-1", "order-1", 3},
        inventory::ReservationReleased{"sku-1", "order-1", 3},
        inventory::ReservationCommitted{"sku-1", "order-1", 3},
    };
    for (const auto& event : events) expect_round_trip(event, inventory::decode);
}

TEST(PaymentsCodec, RoundTripsEveryEventType) {
    const payments::Events events = {
        payments::FundsDeposited{"acct-1", 1'000'000'000'000},
        payments::PaymentAuthorized{"acct-1", "order-1", 0},
        payments::AuthorizationVoided{"acct-1", "order-1", 40},
        payments::PaymentCaptured{"acct-1", "order-1", 40},
    };
    for (const auto& event : events) expect_round_trip(event, payments::decode);
}

TEST(OrdersCodec, RoundTripsEveryEventType) {
    const orders::Events events = {
        orders::OrderPlaced{
            "order-1", "cust-1", "acct-1", {{"sku-1", 2, 500}, {"sku-2", 1, 0}}, 1'000},
        orders::OrderCancellationRequested{"order-1", "too late, \"really\" ünïcode"},
        orders::OrderCancellationRequested{"order-1", ""},
        orders::OrderConfirmed{"order-1"},
        orders::OrderCancelled{"order-1", "timeout"},
    };
    for (const auto& event : events) expect_round_trip(event, orders::decode);
}

TEST(InventoryCodec, NamesTypesAndFieldsAsStored) {
    const inventory::Event event = inventory::StockReserved{"sku-1", "order-1", 3};
    EXPECT_EQ(event_type(event), "StockReserved");
    EXPECT_EQ(encode_payload(event),
              json({{"sku", "sku-1"}, {"order_id", "order-1"}, {"quantity", 3}}));
    EXPECT_EQ(event_type(inventory::Event{inventory::StockReceived{}}), "StockReceived");
    EXPECT_EQ(event_type(inventory::Event{inventory::ReservationReleased{}}),
              "ReservationReleased");
    EXPECT_EQ(event_type(inventory::Event{inventory::ReservationCommitted{}}),
              "ReservationCommitted");
}

TEST(PaymentsCodec, NamesTypesAndFieldsAsStored) {
    const payments::Event event = payments::PaymentCaptured{"acct-1", "order-1", 40};
    EXPECT_EQ(event_type(event), "PaymentCaptured");
    EXPECT_EQ(encode_payload(event),
              json({{"account_id", "acct-1"}, {"order_id", "order-1"}, {"amount", 40}}));
    EXPECT_EQ(event_type(payments::Event{payments::FundsDeposited{}}), "FundsDeposited");
    EXPECT_EQ(event_type(payments::Event{payments::PaymentAuthorized{}}), "PaymentAuthorized");
    EXPECT_EQ(event_type(payments::Event{payments::AuthorizationVoided{}}), "AuthorizationVoided");
}

TEST(OrdersCodec, NamesTypesAndFieldsAsStored) {
    const orders::Event event =
        orders::OrderPlaced{"order-1", "cust-1", "acct-1", {{"sku-1", 2, 500}}, 1'000};
    EXPECT_EQ(event_type(event), "OrderPlaced");
    EXPECT_EQ(encode_payload(event), json::parse(R"({"order_id": "order-1", "customer_id": "cust-1",
                              "account_id": "acct-1", "total": 1000,
                              "lines": [{"sku": "sku-1", "quantity": 2,
                                         "unit_price": {"amount": 500, "currency": "EUR"}}]})"));
    EXPECT_EQ(encode_payload(orders::Event{orders::OrderCancelled{"order-1", "timeout"}}),
              json({{"order_id", "order-1"}, {"reason", "timeout"}}));
    EXPECT_EQ(event_type(orders::Event{orders::OrderCancellationRequested{}}),
              "OrderCancellationRequested");
    EXPECT_EQ(event_type(orders::Event{orders::OrderConfirmed{}}), "OrderConfirmed");
    EXPECT_EQ(event_type(orders::Event{orders::OrderCancelled{}}), "OrderCancelled");
}

TEST(Codec, IgnoresUnknownExtraFields) {
    const auto decoded = inventory::decode(
        "StockReceived", json({{"sku", "sku-1"}, {"quantity", 5}, {"warehouse", "north"}}));
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(*decoded, (inventory::Event{inventory::StockReceived{"sku-1", 5}}));
}

TEST(Codec, RejectsUnknownTypes) {
    const json payload = {{"sku", "sku-1"}, {"quantity", 5}};
    EXPECT_FALSE(inventory::decode("StockTeleported", payload));
    EXPECT_FALSE(inventory::decode("", payload));
    EXPECT_FALSE(inventory::decode("stockreceived", payload));
    // Each aggregate knows only its own events.
    EXPECT_FALSE(payments::decode("StockReceived", payload));
    EXPECT_FALSE(orders::decode("StockReceived", payload));
    EXPECT_FALSE(inventory::decode("OrderConfirmed", json({{"order_id", "order-1"}})));
}

TEST(Codec, RejectsPayloadsThatAreNotObjects) {
    for (const json& payload :
         {json(), json::array(), json(5), json("StockReceived"), json::array({"sku-1", 5})}) {
        EXPECT_FALSE(inventory::decode("StockReceived", payload)) << payload.dump();
        EXPECT_FALSE(payments::decode("FundsDeposited", payload)) << payload.dump();
        EXPECT_FALSE(orders::decode("OrderConfirmed", payload)) << payload.dump();
    }
}

TEST(Codec, RejectsMissingFields) {
    EXPECT_FALSE(inventory::decode("StockReceived", json({{"sku", "sku-1"}})));
    EXPECT_FALSE(inventory::decode("StockReserved", json({{"sku", "sku-1"}, {"quantity", 3}})));
    EXPECT_FALSE(
        inventory::decode("ReservationReleased", json({{"order_id", "o"}, {"quantity", 3}})));
    EXPECT_FALSE(
        inventory::decode("ReservationCommitted", json({{"sku", "s"}, {"order_id", "o"}})));
    EXPECT_FALSE(payments::decode("FundsDeposited", json({{"amount", 3}})));
    EXPECT_FALSE(payments::decode("PaymentAuthorized", json({{"account_id", "a"}, {"amount", 3}})));
    EXPECT_FALSE(
        payments::decode("AuthorizationVoided", json({{"account_id", "a"}, {"order_id", "o"}})));
    EXPECT_FALSE(payments::decode("PaymentCaptured", json({{"order_id", "o"}, {"amount", 3}})));
    EXPECT_FALSE(orders::decode("OrderConfirmed", json::object()));
    EXPECT_FALSE(orders::decode("OrderCancelled", json({{"order_id", "order-1"}})));
    EXPECT_FALSE(orders::decode("OrderCancellationRequested", json({{"reason", "why"}})));
    EXPECT_FALSE(orders::decode(
        "OrderPlaced",
        json({{"order_id", "o"}, {"customer_id", "c"}, {"account_id", "a"}, {"total", 0}})));
}

TEST(Codec, RejectsMistypedFields) {
    EXPECT_FALSE(inventory::decode("StockReceived", json({{"sku", "sku-1"}, {"quantity", "5"}})));
    EXPECT_FALSE(inventory::decode("StockReceived", json({{"sku", "sku-1"}, {"quantity", 5.0}})));
    EXPECT_FALSE(inventory::decode("StockReceived", json({{"sku", "sku-1"}, {"quantity", 5.5}})));
    EXPECT_FALSE(inventory::decode("StockReceived", json({{"sku", 1}, {"quantity", 5}})));
    EXPECT_FALSE(inventory::decode("StockReceived", json({{"sku", nullptr}, {"quantity", 5}})));
    EXPECT_FALSE(payments::decode("FundsDeposited", json({{"account_id", "a"}, {"amount", true}})));
    EXPECT_FALSE(orders::decode("OrderConfirmed", json({{"order_id", json::array({"o"})}})));
}

TEST(Codec, RejectsIntegersBeyondInt64RatherThanWrapping) {
    const std::uint64_t too_big = std::uint64_t{std::numeric_limits<std::int64_t>::max()} + 1;
    EXPECT_FALSE(
        payments::decode("FundsDeposited", json({{"account_id", "a"}, {"amount", too_big}})));
    EXPECT_FALSE(payments::decode(
        "FundsDeposited", json::parse(R"({"account_id": "a", "amount": 99999999999999999999})")));
    const auto largest = payments::decode(
        "FundsDeposited",
        json({{"account_id", "a"}, {"amount", std::numeric_limits<std::int64_t>::max()}}));
    ASSERT_TRUE(largest.has_value());
    EXPECT_EQ(std::get<payments::FundsDeposited>(*largest).amount,
              std::numeric_limits<std::int64_t>::max());
    const auto negative =
        payments::decode("FundsDeposited", json({{"account_id", "a"}, {"amount", -7}}));
    ASSERT_TRUE(negative.has_value());
    EXPECT_EQ(std::get<payments::FundsDeposited>(*negative).amount, -7);
}

TEST(Codec, RejectsMalformedOrderLines) {
    const json base = {{"order_id", "o"}, {"customer_id", "c"}, {"account_id", "a"}, {"total", 5}};
    const auto with_lines = [&base](json lines) {
        json payload = base;
        payload["lines"] = std::move(lines);
        return payload;
    };
    EXPECT_TRUE(orders::decode("OrderPlaced", with_lines(json::array())));
    EXPECT_FALSE(orders::decode("OrderPlaced", with_lines(json::object())));
    EXPECT_FALSE(orders::decode("OrderPlaced", with_lines("sku-1")));
    EXPECT_FALSE(orders::decode("OrderPlaced", with_lines(json::array({5}))));
    EXPECT_FALSE(
        orders::decode("OrderPlaced", with_lines(json::array({{{"sku", "s"}, {"quantity", 1}}}))));
    EXPECT_FALSE(orders::decode(
        "OrderPlaced",
        with_lines(json::array({{{"sku", "s"}, {"quantity", 1}, {"unit_price", 5}},
                                {{"sku", "t"}, {"quantity", "1"}, {"unit_price", 5}}}))));
}

}  // namespace
}  // namespace ordo::domain
