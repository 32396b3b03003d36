// Every command's JSON decoding: any body either decodes to a command within the API's
// bounds or to field errors, never a crash or an exception.
//
// The decoded value is kept in a variable: a pointer into a temporary would dangle.
//
// Input: the first byte picks the command, the rest is the body (and, for a cancellation,
// a first line holding the If-Match header).
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>

#include "command/validation.hpp"
#include "domain/ids.hpp"
#include "fuzz/fuzz.hpp"

namespace {

using ordo::command::Decoded;
using ordo::command::FieldError;

template <class Command>
const Command* command_of(const Decoded<Command>& decoded) {
    if (auto* errors = std::get_if<std::vector<FieldError>>(&decoded)) {
        ORDO_FUZZ_CHECK(!errors->empty());
        for (const auto& e : *errors) ORDO_FUZZ_CHECK(!e.field.empty() && !e.message.empty());
        return nullptr;
    }
    return &std::get<Command>(decoded);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace domain = ordo::domain;
    if (size == 0) return 0;
    const int which = data[0] % 4;
    std::string_view rest{reinterpret_cast<const char*>(data) + 1, size - 1};
    std::optional<std::string> if_match;
    if (which == 3) {
        auto newline = rest.find('\n');
        if (newline != std::string_view::npos) {
            if_match = std::string(rest.substr(0, newline));
            rest.remove_prefix(newline + 1);
        }
    }
    std::string error;
    auto body = ordo::command::parse_body(rest, error);
    if (!body) {
        ORDO_FUZZ_CHECK(!error.empty());
        return 0;
    }
    if (!body->is_object()) return 0;  // the service answers 400 before decoding

    switch (which) {
        case 0:
            if (auto decoded = ordo::command::decode_receive_stock("sku-1", *body);
                auto* c = command_of(decoded)) {
                ORDO_FUZZ_CHECK(c->quantity >= 1 &&
                                c->quantity <= domain::inventory::kMaxReceiptQuantity);
            }
            break;
        case 1:
            if (auto decoded = ordo::command::decode_deposit("acct-1", *body);
                auto* c = command_of(decoded)) {
                ORDO_FUZZ_CHECK(c->amount >= 1 && c->amount <= domain::payments::kMaxDepositAmount);
            }
            break;
        case 2:
            if (auto decoded = ordo::command::decode_place_order(
                    *body, [] { return std::string("generated"); });
                auto* c = command_of(decoded)) {
                ORDO_FUZZ_CHECK(domain::is_valid_id(c->order_id) &&
                                domain::is_valid_id(c->customer_id) &&
                                domain::is_valid_id(c->account_id));
                ORDO_FUZZ_CHECK(!c->lines.empty() && c->lines.size() <= domain::orders::kMaxLines);
                for (const auto& line : c->lines) {
                    ORDO_FUZZ_CHECK(domain::is_valid_id(line.sku));
                    ORDO_FUZZ_CHECK(line.quantity >= 1 &&
                                    line.quantity <= domain::orders::kMaxLineQuantity);
                    ORDO_FUZZ_CHECK(line.unit_price >= 0 &&
                                    line.unit_price <= domain::orders::kMaxUnitPrice);
                }
            }
            break;
        case 3:
            if (auto decoded = ordo::command::decode_cancellation("o-1", *body, if_match);
                auto* c = command_of(decoded)) {
                ORDO_FUZZ_CHECK(c->command.reason.size() <= 200 * 4);
                ORDO_FUZZ_CHECK(!c->if_match || *c->if_match >= 0);
            }
            break;
    }
    return 0;
}
