// How order events and an order's snapshot state are stored: JSON payloads by event type name.

#include "domain/orders.hpp"
#include "domain/payload_reader.hpp"

#include <utility>

namespace ordo::domain::orders {

// Shared by OrderPlaced, the state snapshot and the saga's process events, so they all
// spell lines the same way.
nlohmann::json encode_lines(const std::vector<OrderLine>& lines) {
    nlohmann::json encoded = nlohmann::json::array();
    for (const OrderLine& line : lines) {
        encoded.push_back(
            {{"sku", line.sku},
             {"quantity", line.quantity},
             {"unit_price", {{"amount", line.unit_price}, {"currency", line.currency}}}});
    }
    return encoded;
}

std::optional<std::vector<OrderLine>> decode_lines(const nlohmann::json& lines) {
    if (!lines.is_array()) return std::nullopt;
    std::vector<OrderLine> out;
    for (const nlohmann::json& element : lines) {
        detail::PayloadReader line_in(element);
        OrderLine line{line_in.text("sku"), line_in.integer("quantity")};
        const auto price = element.is_object() ? element.find("unit_price") : element.end();
        if (price == element.end()) return std::nullopt;
        detail::PayloadReader price_in(*price);
        line.unit_price = price_in.integer("amount");
        line.currency = price_in.text("currency");
        if (!line_in.ok() || !price_in.ok()) return std::nullopt;
        out.push_back(std::move(line));
    }
    return out;
}

namespace {

nlohmann::json payload(const OrderPlaced& e) {
    return {{"order_id", e.order_id},
            {"customer_id", e.customer_id},
            {"account_id", e.account_id},
            {"lines", encode_lines(e.lines)},
            {"total", e.total}};
}

nlohmann::json payload(const OrderCancellationRequested& e) {
    return {{"order_id", e.order_id}, {"reason", e.reason}};
}

nlohmann::json payload(const OrderConfirmed& e) {
    return {{"order_id", e.order_id}};
}

nlohmann::json payload(const OrderCancelled& e) {
    return {{"order_id", e.order_id}, {"reason", e.reason}};
}

std::vector<OrderLine> read_lines(detail::PayloadReader& in) {
    auto lines = decode_lines(in.array("lines"));
    if (!lines) {
        in.fail();
        return {};
    }
    return *std::move(lines);
}

// The status by its to_string word, so a snapshot does not depend on the enum's order.
Status read_status(detail::PayloadReader& in) {
    const std::string word = in.text("status");
    for (Status status :
         {Status::kNone, Status::kPending, Status::kConfirmed, Status::kCancelled}) {
        if (to_string(status) == word) return status;
    }
    in.fail();
    return Status::kNone;
}

// PayloadReader has no booleans (no event carries one), so the flag is read here.
bool read_flag(const nlohmann::json& json, std::string_view key, detail::PayloadReader& in) {
    const auto field = json.is_object() ? json.find(key) : json.end();
    if (field == json.end() || !field->is_boolean()) {
        in.fail();
        return false;
    }
    return field->get<bool>();
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
    if (type == OrderPlaced::kType) {
        return detail::decoded_if_ok<Event>(
            in, OrderPlaced{in.text("order_id"), in.text("customer_id"), in.text("account_id"),
                            read_lines(in), in.integer("total")});
    }
    if (type == OrderCancellationRequested::kType) {
        return detail::decoded_if_ok<Event>(
            in, OrderCancellationRequested{in.text("order_id"), in.text("reason")});
    }
    if (type == OrderConfirmed::kType) {
        return detail::decoded_if_ok<Event>(in, OrderConfirmed{in.text("order_id")});
    }
    if (type == OrderCancelled::kType) {
        return detail::decoded_if_ok<Event>(in,
                                            OrderCancelled{in.text("order_id"), in.text("reason")});
    }
    return std::nullopt;
}

nlohmann::json encode_state(const State& state) {
    return {{"status", to_string(state.status)},
            {"order_id", state.order_id},
            {"customer_id", state.customer_id},
            {"account_id", state.account_id},
            {"lines", encode_lines(state.lines)},
            {"total", state.total},
            {"cancel_reason", state.cancel_reason},
            {"cancellation_requested", state.cancellation_requested},
            {"cancellation_request_reason", state.cancellation_request_reason}};
}

std::optional<State> decode_state(const nlohmann::json& json) {
    detail::PayloadReader in(json);
    return detail::decoded_if_ok<State>(
        in, State{read_status(in), in.text("order_id"), in.text("customer_id"),
                  in.text("account_id"), read_lines(in), in.integer("total"),
                  in.text("cancel_reason"), read_flag(json, "cancellation_requested", in),
                  in.text("cancellation_request_reason")});
}

}  // namespace ordo::domain::orders
