// Event and state codecs of every context: decoding never throws or crashes on any JSON, and
// what decodes encodes back to JSON that decodes to the same event or state.
//
// Input: a first line naming the event type (or "state"), then a JSON document.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "fuzz/fuzz.hpp"

namespace {

template <class Decode, class Encode>
void round_trip(std::string_view type, const nlohmann::json& payload, Decode decode,
                Encode encode) {
    auto event = decode(type, payload);
    if (!event) return;
    auto again = decode(type, encode(*event));
    ORDO_FUZZ_CHECK(again && *again == *event);
}

template <class DecodeState, class EncodeState>
void state_round_trip(const nlohmann::json& json, DecodeState decode, EncodeState encode) {
    auto state = decode(json);
    if (!state) return;
    auto again = decode(encode(*state));
    ORDO_FUZZ_CHECK(again && *again == *state);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace inventory = ordo::domain::inventory;
    namespace orders = ordo::domain::orders;
    namespace payments = ordo::domain::payments;
    std::string_view text{reinterpret_cast<const char*>(data), size};
    auto newline = text.find('\n');
    if (newline == std::string_view::npos) return 0;
    std::string_view type = text.substr(0, newline);
    auto json = nlohmann::json::parse(text.substr(newline + 1), nullptr, false);
    if (json.is_discarded()) return 0;

    if (type == "state") {
        state_round_trip(json, inventory::decode_state, inventory::encode_state);
        state_round_trip(json, orders::decode_state, orders::encode_state);
        state_round_trip(json, payments::decode_state, payments::encode_state);
        return 0;
    }
    round_trip(type, json, inventory::decode, inventory::encode_payload);
    round_trip(type, json, orders::decode, orders::encode_payload);
    round_trip(type, json, payments::decode, payments::encode_payload);
    return 0;
}
