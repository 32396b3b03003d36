// How inventory events and a sku's snapshot state are stored: JSON payloads by event type name.

#include "domain/inventory.hpp"
#include "domain/payload_reader.hpp"
#include "domain/settlements_codec.hpp"

#include <utility>

namespace ordo::domain::inventory {
namespace {

constexpr detail::OutcomeNames kOutcomes{"released", "committed"};
static_assert(static_cast<int>(Settlement::released) == 0 &&
              static_cast<int>(Settlement::committed) == 1);

nlohmann::json payload(const StockReceived& e) {
    return {{"sku", e.sku}, {"quantity", e.quantity}};
}

// Reserved, released and committed share one shape.
template <class E>
nlohmann::json payload(const E& e) {
    return {{"sku", e.sku}, {"order_id", e.order_id}, {"quantity", e.quantity}};
}

template <class E>
std::optional<Event> decode_reservation_event(detail::PayloadReader& in) {
    return detail::decoded_if_ok<Event>(
        in, E{in.text("sku"), in.text("order_id"), in.integer("quantity")});
}

}  // namespace

std::string_view event_type(const Event& event) {
    return std::visit([](const auto& e) { return std::decay_t<decltype(e)>::kType; }, event);
}

nlohmann::json encode_payload(const Event& event) {
    return std::visit([](const auto& e) { return payload(e); }, event);
}

std::optional<Event> decode(std::string_view type, const nlohmann::json& payload) {
    detail::PayloadReader in(payload);
    if (type == StockReceived::kType) {
        return detail::decoded_if_ok<Event>(in,
                                            StockReceived{in.text("sku"), in.integer("quantity")});
    }
    if (type == StockReserved::kType) return decode_reservation_event<StockReserved>(in);
    if (type == ReservationReleased::kType) {
        return decode_reservation_event<ReservationReleased>(in);
    }
    if (type == ReservationCommitted::kType) {
        return decode_reservation_event<ReservationCommitted>(in);
    }
    return std::nullopt;
}

nlohmann::json encode_state(const State& state) {
    nlohmann::json reservations = nlohmann::json::array();
    for (const auto& [order_id, quantity] : state.reservations) {
        reservations.push_back({{"order_id", order_id}, {"quantity", quantity}});
    }
    return {{"sku", state.sku},
            {"on_hand", state.on_hand},
            {"received", state.received},
            {"reservations", std::move(reservations)},
            {"settled", detail::encode_settlements(state.settled, kOutcomes)}};
}

std::optional<State> decode_state(const nlohmann::json& json) {
    detail::PayloadReader in(json);
    return detail::decoded_if_ok<State>(
        in, State{in.text("sku"), in.integer("on_hand"), in.integer("received"),
                  detail::read_amounts_by_order(in, "reservations", "quantity"),
                  detail::read_settlements<Settlement>(in, json, kOutcomes)});
}

}  // namespace ordo::domain::inventory
