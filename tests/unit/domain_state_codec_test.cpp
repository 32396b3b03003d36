// The aggregates' snapshot codecs: round trips, stable shapes, the first format's sets, malformed
// snapshots refused.

#include <gtest/gtest.h>

#include <cstdint>
#include <limits>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "domain/recent_settlements.hpp"

namespace ordo::domain {
namespace {

using nlohmann::json;

// The state a stream's history folds to, as a snapshot would be taken of it.
template <class State, class Event>
State fold(const std::vector<Event>& history) {
    State state;
    for (const Event& event : history) state = evolve(std::move(state), event);
    return state;
}

// Encode, then decode, through text too, as a snapshot store would keep it.
template <class State>
void expect_round_trip(const State& state, std::optional<State> (*decode)(const json&)) {
    const json encoded = encode_state(state);
    const auto decoded = decode(json::parse(encoded.dump()));
    ASSERT_TRUE(decoded.has_value()) << encoded.dump();
    EXPECT_EQ(*decoded, state) << encoded.dump();
}

// A value of another JSON type than `value`, to swap in for a field.
json mistyped(const json& value) {
    if (value.is_string()) return 1;
    if (value.is_boolean()) return "true";
    if (value.is_number()) return "1";
    if (value.is_array()) return json::object();
    return json::array();
}

// Whatever decode is given, it answers nullopt rather than throwing.
template <class State>
void expect_rejected(const json& input, std::optional<State> (*decode)(const json&)) {
    std::optional<State> decoded;
    EXPECT_NO_THROW(decoded = decode(input)) << input.dump();
    EXPECT_FALSE(decoded.has_value()) << input.dump();
}

// Not an object, and each top-level field of a valid snapshot missing or of the wrong type.
template <class State>
void expect_rejects_malformed_shapes(const json& valid,
                                     std::optional<State> (*decode)(const json&)) {
    ASSERT_TRUE(decode(valid).has_value()) << valid.dump();
    for (const json& not_object : {json(nullptr), json(1), json("{}"), json::array(), json(true)}) {
        expect_rejected(not_object, decode);
    }
    for (const auto& [key, value] : valid.items()) {
        json missing = valid;
        missing.erase(key);
        expect_rejected(missing, decode);

        json wrong = valid;
        wrong[key] = mistyped(value);
        expect_rejected(wrong, decode);

        json null_field = valid;
        null_field[key] = nullptr;
        expect_rejected(null_field, decode);
    }
}

// --- inventory

inventory::State inventory_state() {
    using namespace inventory;
    return fold<State, Event>({
        StockReceived{"sku-1", 10},
        StockReserved{"sku-1", "order-1", 3},  // stays active
        StockReserved{"sku-1", "order-2", 2},
        StockReserved{"sku-1", "order-3", 1},
        StockReserved{"sku-1", "order-4", 4},
        ReservationReleased{"sku-1", "order-2", 2},
        ReservationCommitted{"sku-1", "order-3", 1},
        StockReceived{"sku-1", 5},
        ReservationCommitted{"sku-1", "order-4", 4},
    });
}

TEST(InventoryStateCodec, RoundTripsAFoldedHistory) {
    const inventory::State state = inventory_state();
    // The history reached every kind of field, so the round trip covers them all.
    ASSERT_EQ(state.reservations.size(), 1U);
    ASSERT_EQ(state.settled.size(), 3U);
    ASSERT_EQ(state.on_hand, 10);
    ASSERT_EQ(state.received, 15);
    expect_round_trip(state, inventory::decode_state);
    expect_round_trip(inventory::State{}, inventory::decode_state);
}

TEST(InventoryStateCodec, EncodesAStableShape) {
    // Snapshots outlive the binary that wrote them: the format is pinned here.
    EXPECT_EQ(encode_state(inventory_state()), json::parse(R"({
        "sku": "sku-1", "on_hand": 10, "received": 15,
        "reservations": [{"order_id": "order-1", "quantity": 3}],
        "settled": [{"order_id": "order-2", "outcome": "released"},
                    {"order_id": "order-3", "outcome": "committed"},
                    {"order_id": "order-4", "outcome": "committed"}]})"));
}

// A snapshot of the first format, with every settled order in two sets, still decodes: its
// orders become the settled window. (The command side folds such streams from the start,
// since the sets lost the order of settlement; see command/aggregate.hpp.)
TEST(InventoryStateCodec, DecodesTheFirstFormatsSets) {
    const auto decoded = inventory::decode_state(json::parse(R"({
        "sku": "sku-1", "on_hand": 10, "received": 15,
        "reservations": [{"order_id": "order-1", "quantity": 3}],
        "released": ["order-2"], "committed": ["order-3", "order-4"]})"));
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->reservations, inventory_state().reservations);
    EXPECT_EQ(decoded->settled.find("order-2"), inventory::Settlement::released);
    EXPECT_EQ(decoded->settled.find("order-3"), inventory::Settlement::committed);
    EXPECT_EQ(decoded->settled.find("order-4"), inventory::Settlement::committed);
    EXPECT_EQ(decoded->settled.size(), 3U);
    // What it decodes to is a state of the new format, and round-trips as one.
    expect_round_trip(*decoded, inventory::decode_state);

    // More settled orders than a state keeps: the window keeps kRecentSettlements of them.
    json many = {{"sku", "sku-1"},
                 {"on_hand", 0},
                 {"received", 0},
                 {"reservations", json::array()},
                 {"released", json::array()},
                 {"committed", json::array()}};
    for (std::size_t i = 0; i < kRecentSettlements + 10; ++i) {
        many["committed"].push_back("order-" + std::to_string(i));
    }
    const auto trimmed = inventory::decode_state(many);
    ASSERT_TRUE(trimmed.has_value());
    EXPECT_EQ(trimmed->settled.size(), kRecentSettlements);

    json duplicate_id = many;
    duplicate_id["committed"].push_back("order-3");
    expect_rejected(duplicate_id, inventory::decode_state);
    json non_string_id = many;
    non_string_id["released"].push_back(7);
    expect_rejected(non_string_id, inventory::decode_state);
}

TEST(InventoryStateCodec, RejectsMalformedSnapshots) {
    const json valid = encode_state(inventory_state());
    expect_rejects_malformed_shapes(valid, inventory::decode_state);

    json float_quantity = valid;
    float_quantity["reservations"][0]["quantity"] = 3.0;
    expect_rejected(float_quantity, inventory::decode_state);

    json huge = valid;
    huge["on_hand"] = std::numeric_limits<std::uint64_t>::max();
    expect_rejected(huge, inventory::decode_state);

    json entry_missing_order = valid;
    entry_missing_order["reservations"][0].erase("order_id");
    expect_rejected(entry_missing_order, inventory::decode_state);

    json entry_not_object = valid;
    entry_not_object["reservations"][0] = 3;
    expect_rejected(entry_not_object, inventory::decode_state);

    json duplicate_reservation = valid;
    duplicate_reservation["reservations"].push_back({{"order_id", "order-1"}, {"quantity", 1}});
    expect_rejected(duplicate_reservation, inventory::decode_state);

    json non_string_id = valid;
    non_string_id["settled"][0]["order_id"] = 7;
    expect_rejected(non_string_id, inventory::decode_state);

    json unknown_outcome = valid;
    unknown_outcome["settled"][0]["outcome"] = "voided";
    expect_rejected(unknown_outcome, inventory::decode_state);

    json entry_not_an_object = valid;
    entry_not_an_object["settled"][1] = "order-3";
    expect_rejected(entry_not_an_object, inventory::decode_state);

    // No fold holds more than the window.
    json too_many = valid;
    while (too_many["settled"].size() <= kRecentSettlements) {
        too_many["settled"].push_back({{"order_id", "o"}, {"outcome", "released"}});
    }
    expect_rejected(too_many, inventory::decode_state);
}

TEST(InventoryStateCodec, ChecksShapeNotInvariants) {
    // Decoding trusts the fold that wrote the snapshot: a negative count is well-formed.
    json negative = encode_state(inventory_state());
    negative["on_hand"] = -1;
    const auto decoded = inventory::decode_state(negative);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->on_hand, -1);

    // Unknown fields are ignored, as in event payloads, for newer writers.
    json extra = encode_state(inventory_state());
    extra["future_field"] = 1;
    EXPECT_EQ(inventory::decode_state(extra), inventory_state());
}

// --- payments

payments::State payments_state() {
    using namespace payments;
    return fold<State, Event>({
        FundsDeposited{"acct-1", 1'000},
        PaymentAuthorized{"acct-1", "order-1", 300},  // stays active
        PaymentAuthorized{"acct-1", "order-2", 0},    // a zero hold stays active too
        PaymentAuthorized{"acct-1", "order-3", 200},
        PaymentAuthorized{"acct-1", "order-4", 100},
        AuthorizationVoided{"acct-1", "order-3", 200},
        PaymentCaptured{"acct-1", "order-4", 100},
        FundsDeposited{"acct-1", 1'000'000'000'000},
    });
}

TEST(PaymentsStateCodec, RoundTripsAFoldedHistory) {
    const payments::State state = payments_state();
    ASSERT_EQ(state.holds.size(), 2U);
    ASSERT_EQ(state.settled.size(), 2U);
    ASSERT_EQ(state.balance, 1'000'000'000'900);
    expect_round_trip(state, payments::decode_state);
    expect_round_trip(payments::State{}, payments::decode_state);
}

TEST(PaymentsStateCodec, EncodesAStableShape) {
    EXPECT_EQ(encode_state(payments_state()), json::parse(R"({
        "account_id": "acct-1", "balance": 1000000000900, "deposited": 1000000001000,
        "holds": [{"order_id": "order-1", "amount": 300}, {"order_id": "order-2", "amount": 0}],
        "settled": [{"order_id": "order-3", "outcome": "voided"},
                    {"order_id": "order-4", "outcome": "captured"}]})"));
}

TEST(PaymentsStateCodec, DecodesTheFirstFormatsSets) {
    const auto decoded = payments::decode_state(json::parse(R"({
        "account_id": "acct-1", "balance": 1000000000900, "deposited": 1000000001000,
        "holds": [{"order_id": "order-1", "amount": 300}, {"order_id": "order-2", "amount": 0}],
        "voided": ["order-3"], "captured": ["order-4"]})"));
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->holds, payments_state().holds);
    EXPECT_EQ(decoded->balance, payments_state().balance);
    EXPECT_EQ(decoded->settled.size(), 2U);
    EXPECT_EQ(decoded->settled.find("order-3"), payments::Settlement::voided);
    EXPECT_EQ(decoded->settled.find("order-4"), payments::Settlement::captured);
    expect_round_trip(*decoded, payments::decode_state);
}

TEST(PaymentsStateCodec, RejectsMalformedSnapshots) {
    const json valid = encode_state(payments_state());
    expect_rejects_malformed_shapes(valid, payments::decode_state);

    json string_amount = valid;
    string_amount["holds"][0]["amount"] = "300";
    expect_rejected(string_amount, payments::decode_state);

    json huge = valid;
    huge["holds"][1]["amount"] = std::numeric_limits<std::uint64_t>::max();
    expect_rejected(huge, payments::decode_state);

    json duplicate_hold = valid;
    duplicate_hold["holds"].push_back({{"order_id", "order-2"}, {"amount", 5}});
    expect_rejected(duplicate_hold, payments::decode_state);

    json non_string_id = valid;
    non_string_id["settled"][1]["order_id"] = nullptr;
    expect_rejected(non_string_id, payments::decode_state);

    json unknown_outcome = valid;
    unknown_outcome["settled"][1]["outcome"] = "committed";
    expect_rejected(unknown_outcome, payments::decode_state);
}

TEST(PaymentsStateCodec, ChecksShapeNotInvariants) {
    json negative = encode_state(payments_state());
    negative["holds"][0]["amount"] = -5;
    const auto decoded = payments::decode_state(negative);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->holds.at("order-1"), -5);
}

// --- orders

orders::OrderPlaced placed() {
    return orders::OrderPlaced{
        "order-1", "cust-1", "acct-1", {{"sku-1", 2, 500}, {"sku-2", 1, 0}}, 1'000};
}

// One state per status, with and without a customer's cancellation request.
std::vector<orders::State> orders_states() {
    using namespace orders;
    return {
        State{},
        fold<State, Event>({placed()}),
        fold<State, Event>({placed(), OrderCancellationRequested{"order-1", "changed my mind"}}),
        fold<State, Event>({placed(), OrderConfirmed{"order-1"}}),
        fold<State, Event>({placed(), OrderCancelled{"order-1", "insufficient_stock"}}),
        fold<State, Event>({placed(), OrderCancellationRequested{"order-1", "\"quoted\" ünïcode"},
                            OrderCancelled{"order-1", "customer_request"}}),
        fold<State, Event>({placed(), OrderCancellationRequested{"order-1", ""},
                            OrderCancelled{"order-1", "timeout"}}),
    };
}

TEST(OrdersStateCodec, RoundTripsEveryStatus) {
    const std::vector<orders::State> states = orders_states();
    ASSERT_EQ(states[0].status, orders::Status::kNone);
    ASSERT_EQ(states[1].status, orders::Status::kPending);
    ASSERT_TRUE(states[2].cancellation_requested);
    ASSERT_EQ(states[2].status, orders::Status::kPending);
    ASSERT_EQ(states[3].status, orders::Status::kConfirmed);
    ASSERT_EQ(states[4].status, orders::Status::kCancelled);
    ASSERT_TRUE(states[5].cancellation_requested);
    ASSERT_EQ(states[5].status, orders::Status::kCancelled);
    for (const orders::State& state : states) expect_round_trip(state, orders::decode_state);
}

TEST(OrdersStateCodec, EncodesStatusAsItsWord) {
    for (const orders::State& state : orders_states()) {
        EXPECT_EQ(encode_state(state)["status"], std::string(to_string(state.status)));
    }
    EXPECT_EQ(encode_state(orders_states()[5]), json::parse(R"({
        "status": "cancelled", "order_id": "order-1", "customer_id": "cust-1",
        "account_id": "acct-1",
        "lines": [{"sku": "sku-1", "quantity": 2, "unit_price": {"amount": 500, "currency": "EUR"}},
                  {"sku": "sku-2", "quantity": 1, "unit_price": {"amount": 0, "currency": "EUR"}}],
        "total": 1000, "cancel_reason": "customer_request", "cancellation_requested": true,
        "cancellation_request_reason": "\"quoted\" ünïcode"})"));
}

TEST(OrdersStateCodec, RejectsMalformedSnapshots) {
    const json valid = encode_state(orders_states()[5]);
    expect_rejects_malformed_shapes(valid, orders::decode_state);

    for (const json& status : {json("Pending"), json("unknown"), json(""), json(1)}) {
        json bad_status = valid;
        bad_status["status"] = status;
        expect_rejected(bad_status, orders::decode_state);
    }

    json flag_as_number = valid;
    flag_as_number["cancellation_requested"] = 1;
    expect_rejected(flag_as_number, orders::decode_state);

    json line_missing_price = valid;
    line_missing_price["lines"][1].erase("unit_price");
    expect_rejected(line_missing_price, orders::decode_state);

    json line_not_object = valid;
    line_not_object["lines"][0] = "sku-1";
    expect_rejected(line_not_object, orders::decode_state);

    json float_total = valid;
    float_total["total"] = 1000.5;
    expect_rejected(float_total, orders::decode_state);
}

TEST(OrdersStateCodec, ChecksShapeNotInvariants) {
    // A cancel reason outside kCancelReasons or a negative total is well-formed.
    json odd = encode_state(orders_states()[4]);
    odd["cancel_reason"] = "not_a_reason";
    odd["total"] = -1;
    const auto decoded = orders::decode_state(odd);
    ASSERT_TRUE(decoded.has_value());
    EXPECT_EQ(decoded->cancel_reason, "not_a_reason");
    EXPECT_EQ(decoded->total, -1);
}

}  // namespace
}  // namespace ordo::domain
