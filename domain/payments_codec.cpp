// How account events and an account's snapshot state are stored: JSON payloads by event type name.

#include "domain/payload_reader.hpp"
#include "domain/payments.hpp"
#include "domain/settlements_codec.hpp"

#include <utility>

namespace ordo::domain::payments {
namespace {

constexpr detail::OutcomeNames kOutcomes{"voided", "captured"};
static_assert(static_cast<int>(Settlement::voided) == 0 &&
              static_cast<int>(Settlement::captured) == 1);

nlohmann::json payload(const FundsDeposited& e) {
    return {{"account_id", e.account_id}, {"amount", e.amount}};
}

// Authorized, voided and captured share one shape.
template <class E>
nlohmann::json payload(const E& e) {
    return {{"account_id", e.account_id}, {"order_id", e.order_id}, {"amount", e.amount}};
}

template <class E>
std::optional<Event> decode_hold_event(detail::PayloadReader& in) {
    return detail::decoded_if_ok<Event>(
        in, E{in.text("account_id"), in.text("order_id"), in.integer("amount")});
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
    if (type == FundsDeposited::kType) {
        return detail::decoded_if_ok<Event>(
            in, FundsDeposited{in.text("account_id"), in.integer("amount")});
    }
    if (type == PaymentAuthorized::kType) return decode_hold_event<PaymentAuthorized>(in);
    if (type == AuthorizationVoided::kType) return decode_hold_event<AuthorizationVoided>(in);
    if (type == PaymentCaptured::kType) return decode_hold_event<PaymentCaptured>(in);
    return std::nullopt;
}

nlohmann::json encode_state(const State& state) {
    nlohmann::json holds = nlohmann::json::array();
    for (const auto& [order_id, amount] : state.holds) {
        holds.push_back({{"order_id", order_id}, {"amount", amount}});
    }
    return {{"account_id", state.account_id},
            {"balance", state.balance},
            {"deposited", state.deposited},
            {"holds", std::move(holds)},
            {"settled", detail::encode_settlements(state.settled, kOutcomes)}};
}

std::optional<State> decode_state(const nlohmann::json& json) {
    detail::PayloadReader in(json);
    return detail::decoded_if_ok<State>(
        in, State{in.text("account_id"), in.integer("balance"), in.integer("deposited"),
                  detail::read_amounts_by_order(in, "holds", "amount"),
                  detail::read_settlements<Settlement>(in, json, kOutcomes)});
}

}  // namespace ordo::domain::payments
