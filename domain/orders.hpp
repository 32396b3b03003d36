#pragma once

// The order aggregate: its commands, events, state and decider.

#include <array>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "domain/decision.hpp"

// One customer order, stream `order-<order_id>`. It starts pending and ends confirmed or
// cancelled, never both; the fulfillment saga drives it there. A customer's cancel is only a
// request: the saga compensates and then cancels, so a confirmation cannot slip in between.
namespace ordo::domain::orders {

inline constexpr std::size_t kMaxLines = 100;
inline constexpr std::int64_t kMaxLineQuantity = 10'000;
inline constexpr std::int64_t kMaxUnitPrice = 100'000'000;
// The currency of a price that names none: every order before prices carried one
// (OrderPlaced version 1), and a PlaceOrder whose client sends none.
inline constexpr std::string_view kDefaultCurrency = "EUR";

// An ISO 4217 code as three upper-case letters; which codes exist is not the order's business.
bool is_currency(std::string_view code);

inline constexpr std::string_view kReasonInsufficientStock = "insufficient_stock";
inline constexpr std::string_view kReasonInsufficientFunds = "insufficient_funds";
inline constexpr std::string_view kReasonTimeout = "timeout";
inline constexpr std::string_view kReasonCustomerRequest = "customer_request";
inline constexpr std::array<std::string_view, 4> kCancelReasons = {
    kReasonInsufficientStock, kReasonInsufficientFunds, kReasonTimeout, kReasonCustomerRequest};

constexpr bool is_cancel_reason(std::string_view reason) {
    for (std::string_view known : kCancelReasons) {
        if (reason == known) return true;
    }
    return false;
}

enum class Status { kNone, kPending, kConfirmed, kCancelled };

// "none", "pending", "confirmed", "cancelled": the words the query API uses.
std::string_view to_string(Status status);

// A line's price is `unit_price` minor units of `currency`; an order's lines share one
// currency, the one its total is in.
struct OrderLine {
    std::string sku;
    std::int64_t quantity = 0;
    std::int64_t unit_price = 0;
    std::string currency = std::string{kDefaultCurrency};
    bool operator==(const OrderLine&) const = default;
};

struct PlaceOrder {
    std::string order_id;
    std::string customer_id;
    std::string account_id;
    std::vector<OrderLine> lines;
    bool operator==(const PlaceOrder&) const = default;
};

// The customer's cancel; `reason` is free text from the customer.
struct RequestCancellation {
    std::string order_id;
    std::string reason;
    bool operator==(const RequestCancellation&) const = default;
};

struct ConfirmOrder {
    static constexpr std::string_view kType = "ConfirmOrder";
    std::string order_id;
    bool operator==(const ConfirmOrder&) const = default;
};

// The saga's cancel, after compensation; `reason` is one of kCancelReasons.
struct CancelOrder {
    static constexpr std::string_view kType = "CancelOrder";
    std::string order_id;
    std::string reason;
    bool operator==(const CancelOrder&) const = default;
};

using Command = std::variant<PlaceOrder, RequestCancellation, ConfirmOrder, CancelOrder>;

// Version 2: a line's unit_price is {"amount": minor units, "currency": code}; version 1 had
// the amount alone, in EUR (upcast by order_placed_v1_to_v2, domain/schema.hpp).
struct OrderPlaced {
    static constexpr std::string_view kType = "OrderPlaced";
    static constexpr int kVersion = 2;
    std::string order_id;
    std::string customer_id;
    std::string account_id;
    std::vector<OrderLine> lines;
    std::int64_t total = 0;
    bool operator==(const OrderPlaced&) const = default;
};

struct OrderCancellationRequested {
    static constexpr std::string_view kType = "OrderCancellationRequested";
    std::string order_id;
    std::string reason;
    bool operator==(const OrderCancellationRequested&) const = default;
};

struct OrderConfirmed {
    static constexpr std::string_view kType = "OrderConfirmed";
    std::string order_id;
    bool operator==(const OrderConfirmed&) const = default;
};

struct OrderCancelled {
    static constexpr std::string_view kType = "OrderCancelled";
    std::string order_id;
    std::string reason;
    bool operator==(const OrderCancelled&) const = default;
};

using Event = std::variant<OrderPlaced, OrderCancellationRequested, OrderConfirmed, OrderCancelled>;
using Events = std::vector<Event>;
using Decision = domain::Decision<Event>;

struct State {
    Status status = Status::kNone;
    std::string order_id;
    std::string customer_id;
    std::string account_id;
    std::vector<OrderLine> lines;
    std::int64_t total = 0;
    std::string cancel_reason;  // one of kCancelReasons once cancelled, else empty
    bool cancellation_requested = false;
    std::string cancellation_request_reason;  // the customer's text

    bool exists() const { return status != Status::kNone; }

    bool operator==(const State&) const = default;
};

State evolve(State state, const Event& event);

Decision decide(const State& state, const PlaceOrder& command);
Decision decide(const State& state, const RequestCancellation& command);
Decision decide(const State& state, const ConfirmOrder& command);
Decision decide(const State& state, const CancelOrder& command);
Decision decide(const State& state, const Command& command);

std::string_view event_type(const Event& event);
nlohmann::json encode_payload(const Event& event);
// nullopt for an unknown type or a malformed payload; never throws.
std::optional<Event> decode(std::string_view type, const nlohmann::json& payload);

// Order lines in their current JSON shape (OrderPlaced version 2), shared with whatever else
// stores lines (the saga's process events). decode_lines: nullopt for anything malformed.
nlohmann::json encode_lines(const std::vector<OrderLine>& lines);
std::optional<std::vector<OrderLine>> decode_lines(const nlohmann::json& lines);

// Snapshot of the state; decode_state returns nullopt for anything malformed (never throws).
// It checks shape and types only, not the aggregate's invariants: a snapshot is a cache of
// evolve over the stream, so it holds whatever that fold produced.
nlohmann::json encode_state(const State& state);
std::optional<State> decode_state(const nlohmann::json& json);

}  // namespace ordo::domain::orders
