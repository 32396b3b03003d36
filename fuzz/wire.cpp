// The wire codec of recorded events (what the relay writes and the projection runtime reads):
// any subject, headers and body decode to an event or to a refusal, never a crash; an event
// that decodes encodes back to the same subject and to a message that decodes to the same
// event and chain link.
//
// Input: the subject on the first line, header lines "name: value" up to an empty line, then
// the body. The subject prefix is "ordo.events".
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "eventstore/wire.hpp"
#include "fuzz/fuzz.hpp"

namespace {

std::string_view next_line(std::string_view& text) {
    auto end = text.find('\n');
    std::string_view line = text.substr(0, end);
    text.remove_prefix(end == std::string_view::npos ? text.size() : end + 1);
    return line;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace es = ordo::eventstore;
    constexpr std::string_view kPrefix = "ordo.events";
    std::string_view text{reinterpret_cast<const char*>(data), size};
    const std::string subject{next_line(text)};
    std::map<std::string, std::string> headers;
    while (!text.empty()) {
        std::string_view line = next_line(text);
        if (line.empty()) break;
        auto colon = line.find(": ");
        if (colon == std::string_view::npos) continue;
        headers[std::string(line.substr(0, colon))] = std::string(line.substr(colon + 2));
    }

    auto result = es::decode_wire(kPrefix, subject, headers, text);
    if (auto* refusal = std::get_if<es::WireRefusal>(&result)) {
        ORDO_FUZZ_CHECK(!refusal->reason.empty());
        return 0;
    }
    const auto& decoded = std::get<es::PublishedEvent>(result);
    const auto& a = decoded.event;
    ORDO_FUZZ_CHECK(decoded.key == a.checkpoint());
    ORDO_FUZZ_CHECK(decoded.previous < decoded.key);
    // A decoded subject is <prefix>.<partition>.<category>, the partition in canonical digits.
    const auto digits =
        subject.substr(kPrefix.size() + 1, subject.size() - kPrefix.size() - 2 - a.category.size());
    const int partition = std::stoi(digits);
    ORDO_FUZZ_CHECK(std::to_string(partition) == digits);

    auto message = es::encode_wire(a, kPrefix, partition, decoded.previous);
    ORDO_FUZZ_CHECK(message.subject == subject);
    auto again = es::decode_wire(kPrefix, message.subject, message.headers, message.body);
    ORDO_FUZZ_CHECK(std::holds_alternative<es::PublishedEvent>(again));
    const auto& b = std::get<es::PublishedEvent>(again).event;
    ORDO_FUZZ_CHECK(a.position == b.position && a.transaction_id == b.transaction_id &&
                    a.stream_id == b.stream_id && a.category == b.category &&
                    a.version == b.version && a.event_id == b.event_id && a.type == b.type &&
                    a.schema_version == b.schema_version && a.payload == b.payload &&
                    a.metadata.to_json() == b.metadata.to_json() && a.recorded_at == b.recorded_at);
    ORDO_FUZZ_CHECK(std::get<es::PublishedEvent>(again).previous == decoded.previous);
    ORDO_FUZZ_CHECK(std::get<es::PublishedEvent>(again).key == decoded.key);
    return 0;
}
