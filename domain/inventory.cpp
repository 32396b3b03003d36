// The inventory decider: how stock events fold into a sku's state, and how its commands decide.

#include "domain/inventory.hpp"

#include <limits>
#include <numeric>
#include <string>

namespace ordo::domain::inventory {
namespace {

void apply(State& state, const StockReceived& event) {
    state.sku = event.sku;
    state.on_hand += event.quantity;
    state.received += event.quantity;
}

void apply(State& state, const StockReserved& event) {
    state.sku = event.sku;
    state.reservations[event.order_id] = event.quantity;
}

void apply(State& state, const ReservationReleased& event) {
    state.reservations.erase(event.order_id);
    state.settled.record(event.order_id, Settlement::released);
}

void apply(State& state, const ReservationCommitted& event) {
    state.reservations.erase(event.order_id);
    state.settled.record(event.order_id, Settlement::committed);
    state.on_hand -= event.quantity;
}

Rejection invalid_quantity(std::int64_t quantity, std::int64_t max) {
    return {"invalid_quantity", "quantity must be between 1 and " + std::to_string(max) + ", got " +
                                    std::to_string(quantity)};
}

}  // namespace

std::int64_t State::reserved() const {
    return std::accumulate(reservations.begin(), reservations.end(), std::int64_t{0},
                           [](std::int64_t sum, const auto& entry) { return sum + entry.second; });
}

State evolve(State state, const Event& event) {
    std::visit([&state](const auto& e) { apply(state, e); }, event);
    return state;
}

Decision decide(const State& state, const ReceiveStock& command) {
    if (command.quantity < 1 || command.quantity > kMaxReceiptQuantity) {
        return invalid_quantity(command.quantity, kMaxReceiptQuantity);
    }
    // Unreachable in practice (billions of receipts), but keeps evolve free of overflow.
    if (state.received > std::numeric_limits<std::int64_t>::max() - command.quantity) {
        return Rejection{"invalid_quantity", "receipts would overflow the stock counter"};
    }
    return Events{StockReceived{command.sku, command.quantity}};
}

Decision decide(const State& state, const ReserveStock& command) {
    if (command.quantity < 1 || command.quantity > kMaxReservationQuantity) {
        return invalid_quantity(command.quantity, kMaxReservationQuantity);
    }
    // Once an order has had a reservation here, whatever became of it, a resent command
    // must not reserve again: after a release that would leak stock to a cancelled order.
    if (state.reservations.contains(command.order_id) || state.settled.find(command.order_id)) {
        return Events{};
    }
    if (command.quantity > state.available()) {
        return Rejection{"insufficient_stock", "requested " + std::to_string(command.quantity) +
                                                   ", available " +
                                                   std::to_string(state.available())};
    }
    return Events{StockReserved{command.sku, command.order_id, command.quantity}};
}

Decision decide(const State& state, const ReleaseReservation& command) {
    const auto settled = state.settled.find(command.order_id);
    if (settled == Settlement::committed) {
        return Rejection{"reservation_committed",
                         "the reservation for order " + command.order_id + " is committed"};
    }
    // Compensation runs blind: a release with nothing reserved records a release of 0, so
    // that a reservation arriving late (a resend that raced the compensation) is refused.
    // A sku that never had stock cannot take a reservation, so it needs no such record.
    if (settled == Settlement::released || !state.exists()) return Events{};
    const auto it = state.reservations.find(command.order_id);
    const std::int64_t quantity = it == state.reservations.end() ? 0 : it->second;
    return Events{ReservationReleased{command.sku, command.order_id, quantity}};
}

Decision decide(const State& state, const CommitReservation& command) {
    if (state.settled.find(command.order_id) == Settlement::committed) return Events{};
    const auto it = state.reservations.find(command.order_id);
    if (it == state.reservations.end()) {
        return Rejection{"no_reservation",
                         "order " + command.order_id + " has no active reservation"};
    }
    return Events{ReservationCommitted{command.sku, command.order_id, it->second}};
}

Decision decide(const State& state, const Command& command) {
    return std::visit([&state](const auto& c) { return decide(state, c); }, command);
}

}  // namespace ordo::domain::inventory
