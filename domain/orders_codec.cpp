#include "domain/orders.hpp"
#include "domain/payload_reader.hpp"

namespace ordo::domain::orders {
namespace {

nlohmann::json payload(const OrderPlaced& e) {
    nlohmann::json lines = nlohmann::json::array();
    for (const OrderLine& line : e.lines) {
        lines.push_back(
            {{"sku", line.sku}, {"quantity", line.quantity}, {"unit_price", line.unit_price}});
    }
    return {{"order_id", e.order_id},
            {"customer_id", e.customer_id},
            {"account_id", e.account_id},
            {"lines", std::move(lines)},
            {"total", e.total}};
}

nlohmann::json payload(const OrderCancellationRequested& e) {
    return {{"order_id", e.order_id}, {"reason", e.reason}};
}

nlohmann::json payload(const OrderConfirmed& e) { return {{"order_id", e.order_id}}; }

nlohmann::json payload(const OrderCancelled& e) {
    return {{"order_id", e.order_id}, {"reason", e.reason}};
}

std::vector<OrderLine> read_lines(detail::PayloadReader& in) {
    std::vector<OrderLine> lines;
    for (const nlohmann::json& element : in.array("lines")) {
        detail::PayloadReader line_in(element);
        lines.push_back(
            {line_in.text("sku"), line_in.integer("quantity"), line_in.integer("unit_price")});
        if (!line_in.ok()) in.fail();
    }
    return lines;
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

}  // namespace ordo::domain::orders
