// The internal commands' target streams and their JSON codec: one field list per command,
// read by both directions.

#include "domain/commands.hpp"

#include <utility>

#include "domain/ids.hpp"
#include "domain/overloaded.hpp"
#include "domain/payload_reader.hpp"

namespace ordo::domain {
namespace {

using detail::PayloadReader;

// Each command's fields, for the encoder (a JSON object) and the decoder (a reader). The
// names are the stored form: renaming one breaks the streams that hold it.
nlohmann::json fields(const inventory::ReserveStock& c) {
    return {{"sku", c.sku}, {"order_id", c.order_id}, {"quantity", c.quantity}};
}
nlohmann::json fields(const inventory::ReleaseReservation& c) {
    return {{"sku", c.sku}, {"order_id", c.order_id}};
}
nlohmann::json fields(const inventory::CommitReservation& c) {
    return {{"sku", c.sku}, {"order_id", c.order_id}};
}
nlohmann::json fields(const payments::AuthorizePayment& c) {
    return {{"account_id", c.account_id}, {"order_id", c.order_id}, {"amount", c.amount}};
}
nlohmann::json fields(const payments::VoidAuthorization& c) {
    return {{"account_id", c.account_id}, {"order_id", c.order_id}};
}
nlohmann::json fields(const payments::CapturePayment& c) {
    return {{"account_id", c.account_id}, {"order_id", c.order_id}};
}
nlohmann::json fields(const orders::ConfirmOrder& c) {
    return {{"order_id", c.order_id}};
}
nlohmann::json fields(const orders::CancelOrder& c) {
    return {{"order_id", c.order_id}, {"reason", c.reason}};
}

template <class C>
C read(PayloadReader& in);
template <>
inventory::ReserveStock read(PayloadReader& in) {
    return {in.text("sku"), in.text("order_id"), in.integer("quantity")};
}
template <>
inventory::ReleaseReservation read(PayloadReader& in) {
    return {in.text("sku"), in.text("order_id")};
}
template <>
inventory::CommitReservation read(PayloadReader& in) {
    return {in.text("sku"), in.text("order_id")};
}
template <>
payments::AuthorizePayment read(PayloadReader& in) {
    return {in.text("account_id"), in.text("order_id"), in.integer("amount")};
}
template <>
payments::VoidAuthorization read(PayloadReader& in) {
    return {in.text("account_id"), in.text("order_id")};
}
template <>
payments::CapturePayment read(PayloadReader& in) {
    return {in.text("account_id"), in.text("order_id")};
}
template <>
orders::ConfirmOrder read(PayloadReader& in) {
    return {in.text("order_id")};
}
template <>
orders::CancelOrder read(PayloadReader& in) {
    return {in.text("order_id"), in.text("reason")};
}

// Tries each alternative of the variant in turn: the one whose kType is `type`.
template <std::size_t I = 0>
std::variant<InternalCommand, UnreadableCommand> decode_as(std::string_view type,
                                                           const nlohmann::json& json) {
    if constexpr (I == std::variant_size_v<InternalCommand>) {
        return UnreadableCommand{"unknown command type \"" + std::string{type} + "\""};
    } else {
        using C = std::variant_alternative_t<I, InternalCommand>;
        if (type != C::kType) return decode_as<I + 1>(type, json);
        PayloadReader in{json};
        C command = read<C>(in);
        if (!in.ok()) {
            return UnreadableCommand{std::string{type} + ": a field is missing or mistyped"};
        }
        return InternalCommand{std::move(command)};
    }
}

}  // namespace

std::string target_stream(const InternalCommand& command) {
    return std::visit(
        Overloaded{
            [](const inventory::ReserveStock& c) { return inventory_stream(c.sku); },
            [](const inventory::ReleaseReservation& c) { return inventory_stream(c.sku); },
            [](const inventory::CommitReservation& c) { return inventory_stream(c.sku); },
            [](const payments::AuthorizePayment& c) { return account_stream(c.account_id); },
            [](const payments::VoidAuthorization& c) { return account_stream(c.account_id); },
            [](const payments::CapturePayment& c) { return account_stream(c.account_id); },
            [](const orders::ConfirmOrder& c) { return order_stream(c.order_id); },
            [](const orders::CancelOrder& c) { return order_stream(c.order_id); },
        },
        command);
}

nlohmann::json encode_command(const InternalCommand& command) {
    return std::visit(
        [](const auto& c) {
            auto json = fields(c);
            json["type"] = std::decay_t<decltype(c)>::kType;
            return json;
        },
        command);
}

std::variant<InternalCommand, UnreadableCommand> decode_command(const nlohmann::json& json) {
    if (!json.is_object()) return UnreadableCommand{"a command is a JSON object"};
    const auto type = json.find("type");
    if (type == json.end() || !type->is_string()) {
        return UnreadableCommand{"a command needs a string \"type\""};
    }
    return decode_as(type->get<std::string>(), json);
}

}  // namespace ordo::domain
