// The wire codec of recorded events: encode_wire for the relay, decode_wire for consumers.
#include "eventstore/wire.hpp"

#include <charconv>
#include <cstdint>
#include <limits>

#include <nlohmann/json.hpp>

#include "platform/core/trace.hpp"

namespace ordo::eventstore {
namespace {

constexpr const char* kMessageId = "Nats-Msg-Id";
constexpr const char* kTraceparent = "traceparent";
constexpr const char* kStream = "ordo-stream";
constexpr const char* kVersion = "ordo-version";
constexpr const char* kType = "ordo-type";
constexpr const char* kOrderKey = "ordo-order-key";
constexpr const char* kPrevious = "ordo-previous";
constexpr const char* kPartition = "ordo-partition";
constexpr const char* kRecordedAt = "ordo-recorded-at";
constexpr const char* kShard = "ordo-shard";

bool same_name(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (std::size_t i = 0; i < a.size(); ++i) {
        auto lower = [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; };
        if (lower(a[i]) != lower(b[i])) return false;
    }
    return true;
}

// An empty value counts as absent: that is how NATS delivers one.
const std::string* header(const std::map<std::string, std::string>& headers,
                          std::string_view name) {
    for (const auto& [key, value] : headers) {
        if (same_name(key, name)) return value.empty() ? nullptr : &value;
    }
    return nullptr;
}

std::string shown(std::string_view text) {
    constexpr std::size_t kShown = 80;
    if (text.size() <= kShown) return "'" + std::string(text) + "'";
    return "'" + std::string(text.substr(0, kShown)) + "...'";
}

// Decoding stops at the first refusal; this carries it out of the helpers.
struct Refused {
    std::string reason;
};

const std::string& required_header(const std::map<std::string, std::string>& headers,
                                   const char* name) {
    const auto* value = header(headers, name);
    if (!value) throw Refused{std::string("header ") + name + " is missing"};
    return *value;
}

// A header that must say exactly what the body says.
void agrees(const std::map<std::string, std::string>& headers, const char* name,
            const std::string& expected, const char* field) {
    const auto& value = required_header(headers, name);
    if (value != expected) {
        throw Refused{std::string("header ") + name + " " + shown(value) +
                      " contradicts the body's " + field + " " + shown(expected)};
    }
}

const nlohmann::json& field(const nlohmann::json& body, const char* name) {
    auto it = body.find(name);
    if (it == body.end()) throw Refused{std::string("body lacks the field ") + name};
    return *it;
}

std::string string_field(const nlohmann::json& body, const char* name) {
    const auto& value = field(body, name);
    if (!value.is_string()) throw Refused{std::string("body field ") + name + " is not a string"};
    return value.get<std::string>();
}

// Integers only: converting 1e300 to an integer would be undefined behaviour.
std::int64_t integer_field(const nlohmann::json& body, const char* name, std::int64_t min,
                           std::int64_t max) {
    const auto& value = field(body, name);
    if (!value.is_number_integer()) {
        throw Refused{std::string("body field ") + name + " is not an integer"};
    }
    if (value.is_number_unsigned()
            ? value.get<std::uint64_t>() > static_cast<std::uint64_t>(max)
            : value.get<std::int64_t>() > max || value.get<std::int64_t>() < min) {
        throw Refused{std::string("body field ") + name + " is out of range: " + value.dump()};
    }
    return value.get<std::int64_t>();
}

std::uint64_t unsigned_field(const nlohmann::json& body, const char* name) {
    const auto& value = field(body, name);
    if (!value.is_number_integer() ||
        (!value.is_number_unsigned() && value.get<std::int64_t>() < 0)) {
        throw Refused{std::string("body field ") + name + " is not an unsigned integer"};
    }
    return value.get<std::uint64_t>();
}

Checkpoint checkpoint_header(const std::string& value, const char* name) {
    auto checkpoint = Checkpoint::parse_token(value);
    if (!checkpoint) {
        throw Refused{std::string("header ") + name + " " + shown(value) + " is not an order key"};
    }
    return *checkpoint;
}

int partition_header(const std::string& value) {
    int partition = -1;
    auto [end, ec] = std::from_chars(value.data(), value.data() + value.size(), partition);
    if (ec != std::errc{} || end != value.data() + value.size() || partition < 0 ||
        std::to_string(partition) != value) {
        throw Refused{std::string("header ") + kPartition + " " + shown(value) +
                      " is not a partition number"};
    }
    return partition;
}

RecordedEvent event_of(std::string_view body_text) {
    auto body = nlohmann::json::parse(body_text, nullptr, /*allow_exceptions=*/false);
    if (body.is_discarded()) throw Refused{"body is not JSON"};
    if (!body.is_object()) throw Refused{"body is not a JSON object"};
    const auto& metadata = field(body, "metadata");
    if (!metadata.is_object()) throw Refused{"body field metadata is not an object"};
    constexpr auto kInt64Max = std::numeric_limits<std::int64_t>::max();
    return RecordedEvent{
        integer_field(body, "position", 0, kInt64Max),  // a checkpoint cannot be negative
        unsigned_field(body, "transaction_id"),
        string_field(body, "stream"),
        string_field(body, "category"),
        integer_field(body, "version", std::numeric_limits<std::int64_t>::min(), kInt64Max),
        string_field(body, "event_id"),
        string_field(body, "type"),
        static_cast<int>(integer_field(body, "schema_version", std::numeric_limits<int>::min(),
                                       std::numeric_limits<int>::max())),
        field(body, "payload"),
        Metadata::from_json(metadata),
        string_field(body, "recorded_at")};
}

PublishedEvent decode(std::string_view prefix, std::string_view subject,
                      const std::map<std::string, std::string>& headers, std::string_view body) {
    PublishedEvent published{.event = event_of(body)};
    const auto& e = published.event;

    published.key = checkpoint_header(required_header(headers, kOrderKey), kOrderKey);
    if (published.key != e.checkpoint()) {
        throw Refused{std::string("header ") + kOrderKey + " " + shown(published.key.token()) +
                      " contradicts the body's position " + shown(e.checkpoint().token())};
    }
    if (const auto* previous = header(headers, kPrevious)) {
        published.previous = checkpoint_header(*previous, kPrevious);
        if (published.previous >= published.key) {
            throw Refused{std::string("header ") + kPrevious + " " + shown(*previous) +
                          " is not before the event's order key " + shown(published.key.token())};
        }
    }
    agrees(headers, kMessageId, e.event_id, "event_id");
    agrees(headers, kStream, e.stream_id, "stream");
    agrees(headers, kVersion, std::to_string(e.version), "version");
    agrees(headers, kType, e.type, "type");
    agrees(headers, kRecordedAt, e.recorded_at, "recorded_at");

    const auto* traceparent = header(headers, kTraceparent);
    const auto expected_traceparent = traceparent_of(e.metadata);
    if (traceparent && !expected_traceparent) {
        throw Refused{std::string("header ") + kTraceparent + " " + shown(*traceparent) +
                      " but the body's metadata carries no trace context"};
    }
    if (expected_traceparent) agrees(headers, kTraceparent, *expected_traceparent, "metadata");

    if (const auto* shard = header(headers, kShard)) {
        auto [end, ec] =
            std::from_chars(shard->data(), shard->data() + shard->size(), published.shard);
        if (ec != std::errc{} || end != shard->data() + shard->size() || published.shard < 1 ||
            published.shard > 255 || std::to_string(published.shard) != *shard) {
            throw Refused{std::string("header ") + kShard + " " + shown(*shard) +
                          " is not a shard number (1 to 255; shard 0 sends none)"};
        }
    }
    const auto& partition = required_header(headers, kPartition);
    partition_header(partition);
    const auto expected_subject = std::string(prefix) + "." + partition + "." + e.category;
    if (subject != expected_subject) {
        throw Refused{"subject " + shown(subject) + " is not " + shown(expected_subject) +
                      " (prefix, partition, category)"};
    }
    return published;
}

}  // namespace

std::optional<std::string> traceparent_of(const Metadata& metadata) {
    auto trace = trace_of(metadata);
    if (!trace) return std::nullopt;
    return trace->traceparent();
}

WireMessage encode_wire(const RecordedEvent& e, std::string_view subject_prefix, int partition,
                        Checkpoint previous, int shard) {
    WireMessage m;
    m.subject = std::string(subject_prefix) + "." + std::to_string(partition) + "." + e.category;
    m.headers[kMessageId] = e.event_id;
    if (auto traceparent = traceparent_of(e.metadata)) m.headers[kTraceparent] = *traceparent;
    m.headers[kStream] = e.stream_id;
    m.headers[kVersion] = std::to_string(e.version);
    m.headers[kType] = e.type;
    m.headers[kOrderKey] = e.checkpoint().token();
    m.headers[kPrevious] = previous == Checkpoint{} ? "" : previous.token();  // "": not sent
    m.headers[kPartition] = std::to_string(partition);
    m.headers[kRecordedAt] = e.recorded_at;
    if (shard != 0) m.headers[kShard] = std::to_string(shard);
    m.body = nlohmann::json{{"event_id", e.event_id},
                            {"stream", e.stream_id},
                            {"category", e.category},
                            {"version", e.version},
                            {"type", e.type},
                            {"schema_version", e.schema_version},
                            {"payload", e.payload},
                            {"metadata", e.metadata.to_json()},
                            {"recorded_at", e.recorded_at},
                            {"position", e.position},
                            {"transaction_id", e.transaction_id}}
                 .dump();
    return m;
}

std::variant<PublishedEvent, WireRefusal> decode_wire(
    std::string_view subject_prefix, std::string_view subject,
    const std::map<std::string, std::string>& headers, std::string_view body) {
    try {
        return decode(subject_prefix, subject, headers, body);
    } catch (Refused& refused) {
        return WireRefusal{std::move(refused.reason)};
    } catch (const std::exception& e) {
        // Nothing above should throw otherwise; should it, the message is still refused.
        return WireRefusal{std::string("undecodable: ") + e.what()};
    }
}

}  // namespace ordo::eventstore
