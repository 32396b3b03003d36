// The orders decider: how order events fold into state, and the rules for placing, confirming and
// cancelling an order.

#include "domain/orders.hpp"

#include <algorithm>

#include <set>
#include <string>

namespace ordo::domain::orders {
namespace {

void apply(State& state, const OrderPlaced& event) {
    state.status = Status::kPending;
    state.order_id = event.order_id;
    state.customer_id = event.customer_id;
    state.account_id = event.account_id;
    state.lines = event.lines;
    state.total = event.total;
}

void apply(State& state, const OrderCancellationRequested& event) {
    state.cancellation_requested = true;
    state.cancellation_request_reason = event.reason;
}

void apply(State& state, const OrderConfirmed& /*event*/) {
    state.status = Status::kConfirmed;
}

void apply(State& state, const OrderCancelled& event) {
    state.status = Status::kCancelled;
    state.cancel_reason = event.reason;
}

std::optional<Rejection> validate_lines(const std::vector<OrderLine>& lines) {
    if (lines.empty() || lines.size() > kMaxLines) {
        return Rejection{"invalid_lines", "an order needs 1 to " + std::to_string(kMaxLines) +
                                              " lines, got " + std::to_string(lines.size())};
    }
    std::set<std::string_view> skus;
    for (std::size_t i = 0; i < lines.size(); ++i) {
        const OrderLine& line = lines[i];
        const std::string field = "lines[" + std::to_string(i) + "]";
        if (!skus.insert(line.sku).second) {
            return Rejection{"duplicate_sku", field + ".sku " + line.sku + " appears twice"};
        }
        if (line.quantity < 1 || line.quantity > kMaxLineQuantity) {
            return Rejection{"invalid_quantity", field + ".quantity must be between 1 and " +
                                                     std::to_string(kMaxLineQuantity)};
        }
        if (line.unit_price < 0 || line.unit_price > kMaxUnitPrice) {
            return Rejection{"invalid_price", field + ".unit_price must be between 0 and " +
                                                  std::to_string(kMaxUnitPrice)};
        }
        if (!is_currency(line.currency)) {
            return Rejection{"invalid_currency",
                             field + ".currency must be three upper-case letters"};
        }
        if (line.currency != lines.front().currency) {
            return Rejection{"mixed_currencies", field + ".currency " + line.currency +
                                                     " differs from the order's " +
                                                     lines.front().currency};
        }
    }
    // Accounts hold amounts of one currency and payments carry none: an order in another
    // would be charged as if it were in that one.
    if (lines.front().currency != kDefaultCurrency) {
        return Rejection{"unsupported_currency", "accounts hold " + std::string{kDefaultCurrency} +
                                                     "; an order in " + lines.front().currency +
                                                     " cannot be paid from them"};
    }
    return std::nullopt;
}

// Within the limits the total is at most 100 * 10'000 * 100'000'000 = 1e14: no overflow.
std::int64_t total_of(const std::vector<OrderLine>& lines) {
    std::int64_t total = 0;
    for (const OrderLine& line : lines) total += line.quantity * line.unit_price;
    return total;
}

Rejection not_found(const std::string& order_id) {
    return {"order_not_found", "order " + order_id + " does not exist"};
}
Rejection already_confirmed(const std::string& order_id) {
    return {"order_confirmed", "order " + order_id + " is confirmed"};
}
Rejection already_cancelled(const std::string& order_id) {
    return {"order_cancelled", "order " + order_id + " is cancelled"};
}

}  // namespace

bool is_currency(std::string_view code) {
    return code.size() == 3 &&
           std::all_of(code.begin(), code.end(), [](char c) { return c >= 'A' && c <= 'Z'; });
}

std::string_view to_string(Status status) {
    switch (status) {
        case Status::kNone:
            return "none";
        case Status::kPending:
            return "pending";
        case Status::kConfirmed:
            return "confirmed";
        case Status::kCancelled:
            return "cancelled";
    }
    return "none";
}

State evolve(State state, const Event& event) {
    std::visit([&state](const auto& e) { apply(state, e); }, event);
    return state;
}

Decision decide(const State& state, const PlaceOrder& command) {
    if (auto rejection = validate_lines(command.lines)) return *std::move(rejection);
    // A repeated PlaceOrder is a conflict, not a no-op: the order id may have been reused
    // for a different order. Exact replays are absorbed earlier, by the idempotency key.
    if (state.exists()) {
        return Rejection{"order_exists", "order " + command.order_id + " already exists"};
    }
    return Events{OrderPlaced{command.order_id, command.customer_id, command.account_id,
                              command.lines, total_of(command.lines)}};
}

Decision decide(const State& state, const RequestCancellation& command) {
    switch (state.status) {
        case Status::kNone:
            return not_found(command.order_id);
        case Status::kConfirmed:
            return already_confirmed(command.order_id);
        case Status::kCancelled:
            return already_cancelled(command.order_id);
        case Status::kPending:
            break;
    }
    if (state.cancellation_requested) return Events{};
    return Events{OrderCancellationRequested{command.order_id, command.reason}};
}

Decision decide(const State& state, const ConfirmOrder& command) {
    switch (state.status) {
        case Status::kNone:
            return not_found(command.order_id);
        case Status::kConfirmed:
            return Events{};
        case Status::kCancelled:
            return already_cancelled(command.order_id);
        case Status::kPending:
            break;
    }
    // The customer asked first: the saga must compensate instead of confirming.
    if (state.cancellation_requested) {
        return Rejection{"cancellation_requested",
                         "order " + command.order_id + " has a pending cancellation request"};
    }
    return Events{OrderConfirmed{command.order_id}};
}

Decision decide(const State& state, const CancelOrder& command) {
    if (!is_cancel_reason(command.reason)) {
        return Rejection{"invalid_reason", "unknown cancel reason '" + command.reason + "'"};
    }
    switch (state.status) {
        case Status::kNone:
            return not_found(command.order_id);
        case Status::kConfirmed:
            return already_confirmed(command.order_id);
        case Status::kCancelled:
            return Events{};
        case Status::kPending:
            break;
    }
    return Events{OrderCancelled{command.order_id, command.reason}};
}

Decision decide(const State& state, const Command& command) {
    return std::visit([&state](const auto& c) { return decide(state, c); }, command);
}

}  // namespace ordo::domain::orders
