// The NATS message decoder (what the projection runtime and saga intake read): any headers
// and body decode to an event or to nothing, never a crash; an event that decodes encodes
// back (as the relay writes it) to a message that decodes to the same event.
//
// Input: header lines "name: value" up to an empty line, then the body.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "eventstore/event_message.hpp"
#include "fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text{reinterpret_cast<const char*>(data), size};
    ordo::platform::jetstream::Message message;
    while (!text.empty()) {
        auto end = text.find('\n');
        std::string_view line = text.substr(0, end);
        text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
        if (line.empty()) break;
        auto colon = line.find(": ");
        if (colon == std::string_view::npos) continue;
        message.headers[std::string(line.substr(0, colon))] = std::string(line.substr(colon + 2));
    }
    message.data = std::string(text);

    auto decoded = ordo::eventstore::from_message(message);
    if (!decoded) return 0;
    const std::string previous =
        decoded->previous == ordo::eventstore::Checkpoint{} ? "" : decoded->previous.token();
    auto again =
        ordo::eventstore::from_message(ordo::eventstore::to_message(decoded->event, 0, previous));
    // The relay writes the order key from the event itself; a hand-made message may carry
    // another key, so compare what the event says.
    ORDO_FUZZ_CHECK(again);
    const auto& a = decoded->event;
    const auto& b = again->event;
    ORDO_FUZZ_CHECK(a.position == b.position && a.transaction_id == b.transaction_id &&
                    a.stream_id == b.stream_id && a.category == b.category &&
                    a.version == b.version && a.event_id == b.event_id && a.type == b.type &&
                    a.schema_version == b.schema_version && a.payload == b.payload &&
                    a.recorded_at == b.recorded_at);
    ORDO_FUZZ_CHECK(again->previous == decoded->previous);
    ORDO_FUZZ_CHECK(again->key == a.checkpoint());
    return 0;
}
