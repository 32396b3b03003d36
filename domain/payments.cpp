// The payments decider: how account events fold into state, and the rules for deposits, holds,
// voids and captures.

#include "domain/payments.hpp"

#include <limits>
#include <numeric>
#include <string>

namespace ordo::domain::payments {
namespace {

void apply(State& state, const FundsDeposited& event) {
    state.account_id = event.account_id;
    state.balance += event.amount;
    state.deposited += event.amount;
}

void apply(State& state, const PaymentAuthorized& event) {
    state.account_id = event.account_id;
    state.holds[event.order_id] = event.amount;
}

void apply(State& state, const AuthorizationVoided& event) {
    state.holds.erase(event.order_id);
    state.settled.record(event.order_id, Settlement::voided);
}

void apply(State& state, const PaymentCaptured& event) {
    state.holds.erase(event.order_id);
    state.settled.record(event.order_id, Settlement::captured);
    state.balance -= event.amount;
}

}  // namespace

std::int64_t State::held() const {
    return std::accumulate(holds.begin(), holds.end(), std::int64_t{0},
                           [](std::int64_t sum, const auto& entry) { return sum + entry.second; });
}

State evolve(State state, const Event& event) {
    std::visit([&state](const auto& e) { apply(state, e); }, event);
    return state;
}

Decision decide(const State& state, const Deposit& command) {
    if (command.amount < 1 || command.amount > kMaxDepositAmount) {
        return Rejection{"invalid_amount", "amount must be between 1 and " +
                                               std::to_string(kMaxDepositAmount) + ", got " +
                                               std::to_string(command.amount)};
    }
    // Millions of maximal deposits would be needed, but evolve must never overflow.
    if (state.deposited > std::numeric_limits<std::int64_t>::max() - command.amount) {
        return Rejection{"invalid_amount", "deposits would overflow the balance"};
    }
    return Events{FundsDeposited{command.account_id, command.amount}};
}

Decision decide(const State& state, const AuthorizePayment& command) {
    if (command.amount < 0) {
        return Rejection{"invalid_amount",
                         "amount must not be negative, got " + std::to_string(command.amount)};
    }
    // Once an order has had a hold here, whatever became of it, a resent command must not
    // hold again: after a void that would lock funds for a cancelled order.
    if (state.holds.contains(command.order_id) || state.settled.find(command.order_id)) {
        return Events{};
    }
    if (command.amount > state.available()) {
        return Rejection{"insufficient_funds", "requested " + std::to_string(command.amount) +
                                                   ", available " +
                                                   std::to_string(state.available())};
    }
    return Events{PaymentAuthorized{command.account_id, command.order_id, command.amount}};
}

Decision decide(const State& state, const VoidAuthorization& command) {
    const auto settled = state.settled.find(command.order_id);
    if (settled == Settlement::captured) {
        return Rejection{"payment_captured",
                         "the payment for order " + command.order_id + " is captured"};
    }
    // Compensation runs blind: a void with no hold records a void of 0, so that an
    // authorization arriving late (a resend that raced the compensation) is refused. An
    // account with no history gets no such record (it would appear in the read model); only
    // an authorization of 0 could still land there, and it holds nothing.
    if (settled == Settlement::voided || state.account_id.empty()) return Events{};
    const auto it = state.holds.find(command.order_id);
    const std::int64_t amount = it == state.holds.end() ? 0 : it->second;
    return Events{AuthorizationVoided{command.account_id, command.order_id, amount}};
}

Decision decide(const State& state, const CapturePayment& command) {
    if (state.settled.find(command.order_id) == Settlement::captured) return Events{};
    const auto it = state.holds.find(command.order_id);
    if (it == state.holds.end()) {
        return Rejection{"no_authorization",
                         "order " + command.order_id + " has no active authorization"};
    }
    return Events{PaymentCaptured{command.account_id, command.order_id, it->second}};
}

Decision decide(const State& state, const Command& command) {
    return std::visit([&state](const auto& c) { return decide(state, c); }, command);
}

}  // namespace ordo::domain::payments
