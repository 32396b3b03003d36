// The event store's vocabulary: expected versions, metadata, checkpoints, refusals, and the
// append's input rules.
#include "eventstore/events.hpp"

#include <cctype>
#include <charconv>
#include <set>

#include "platform/core/errors.hpp"

namespace ordo::eventstore {
namespace {

constexpr std::size_t kMaxEventsPerAppend = 10'000;
constexpr std::size_t kMaxStreamIdLength = 200;
constexpr std::size_t kMaxEventTypeLength = 200;

bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool is_uuid(std::string_view s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash != (c == '-')) return false;
        if (!dash && !std::isxdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
}

}  // namespace

void check_append(const std::string& stream, const std::vector<NewEvent>& events) {
    if (!is_valid_stream_id(stream)) {
        throw platform::InvalidInput("invalid stream id '" + stream +
                                     "': expected <category>-<id> of [A-Za-z0-9._-]");
    }
    if (events.empty()) throw platform::InvalidInput("an append needs at least one event");
    if (events.size() > kMaxEventsPerAppend) {
        throw platform::InvalidInput("at most " + std::to_string(kMaxEventsPerAppend) +
                                     " events per append");
    }
    std::set<std::string> ids;
    for (const auto& e : events) {
        if (!is_uuid(e.event_id)) {
            throw platform::InvalidInput("event id '" + e.event_id + "' is not a UUID");
        }
        // A UUID is one value however its hex digits are cased.
        std::string canonical = e.event_id;
        for (auto& c : canonical)
            c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        if (!ids.insert(std::move(canonical)).second) {
            throw platform::InvalidInput("event id " + e.event_id + " appears twice in one append");
        }
        if (e.type.empty() || e.type.size() > kMaxEventTypeLength) {
            throw platform::InvalidInput("event type must be 1 to 200 characters");
        }
    }
}

ExpectedVersion ExpectedVersion::exact(std::int64_t version) {
    if (version < 1) throw platform::InvalidInput("an exact expected version is at least 1");
    return ExpectedVersion{version};
}

std::string ExpectedVersion::to_string() const {
    if (value_ < 0) return "any";
    if (value_ == 0) return "no stream";
    return std::to_string(value_);
}

nlohmann::json Metadata::to_json() const {
    nlohmann::json j{{"trace_id", trace_id},
                     {"span_id", span_id},
                     {"correlation_id", correlation_id},
                     {"causation_id", causation_id},
                     {"command_id", command_id},
                     {"actor", actor}};
    // Only when they say more than the defaults, so that most events keep the shape they
    // always had.
    if (trace_flags != "01") j["trace_flags"] = trace_flags;
    if (!tracestate.empty()) j["tracestate"] = tracestate;
    return j;
}

Metadata Metadata::from_json(const nlohmann::json& j) {
    auto get = [&](const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
    };
    Metadata m{get("trace_id"),     get("span_id"),    get("correlation_id"),
               get("causation_id"), get("command_id"), get("actor")};
    if (auto flags = get("trace_flags"); !flags.empty()) m.trace_flags = flags;
    m.tracestate = get("tracestate");
    return m;
}

std::optional<platform::TraceContext> trace_of(const Metadata& metadata) {
    if (metadata.trace_id.size() != 32 || metadata.span_id.size() != 16 ||
        metadata.trace_flags.size() != 2) {
        return std::nullopt;
    }
    auto trace = platform::TraceContext::parse("00-" + metadata.trace_id + "-" + metadata.span_id +
                                               "-" + metadata.trace_flags);
    if (!trace) return std::nullopt;
    if (!metadata.tracestate.empty()) {
        // Stored as it was validated; one that no longer parses is dropped, the trace kept.
        if (auto state = platform::TraceState::parse(metadata.tracestate)) {
            trace->tracestate = state->format();
        }
    }
    return trace;
}

void set_trace(Metadata& metadata, const platform::TraceContext& trace) {
    metadata.trace_id = trace.trace_id_hex();
    metadata.span_id = trace.span_id_hex();
    static constexpr char kHex[] = "0123456789abcdef";
    metadata.trace_flags = {kHex[trace.flags >> 4], kHex[trace.flags & 0x0f]};
    metadata.tracestate = trace.tracestate;
}

std::string Checkpoint::token() const {
    return std::to_string(transaction_id) + "." + std::to_string(position);
}

std::optional<Checkpoint> Checkpoint::parse_token(std::string_view token) {
    auto dot = token.find('.');
    if (dot == std::string_view::npos || token.size() > 48) return std::nullopt;
    auto transaction_id = parse_transaction_id(token.substr(0, dot));
    if (!transaction_id) return std::nullopt;
    Checkpoint c;
    c.transaction_id = *transaction_id;
    auto second = token.substr(dot + 1);
    auto [end, ec] = std::from_chars(second.data(), second.data() + second.size(), c.position);
    if (ec != std::errc{} || end != second.data() + second.size() || second.empty() ||
        c.position < 0) {
        return std::nullopt;
    }
    return c;
}

std::string ShardToken::token() const {
    return std::to_string(shard) + ":" + at.token();
}

std::optional<ShardToken> ShardToken::parse(std::string_view token) {
    ShardToken out;
    if (auto colon = token.find(':'); colon != std::string_view::npos) {
        auto id = token.substr(0, colon);
        auto [end, ec] = std::from_chars(id.data(), id.data() + id.size(), out.shard);
        if (ec != std::errc{} || end != id.data() + id.size() || id.size() > 3 || out.shard < 0) {
            return std::nullopt;
        }
        token.remove_prefix(colon + 1);
    }
    auto at = Checkpoint::parse_token(token);
    if (!at) return std::nullopt;
    out.at = *at;
    return out;
}

std::optional<std::uint64_t> parse_transaction_id(std::string_view text) {
    // from_chars takes no sign and no blanks for an unsigned type, and says when the value
    // does not fit; an empty text is invalid_argument.
    std::uint64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::uint64_t transaction_id_from_xid8(std::string_view text) {
    auto value = parse_transaction_id(text);
    if (!value) throw std::runtime_error("not a transaction id: '" + std::string{text} + "'");
    return *value;
}

ConcurrencyConflict::ConcurrencyConflict(std::string stream, ExpectedVersion expected,
                                         std::int64_t actual)
    : std::runtime_error("stream " + stream + " is at version " + std::to_string(actual) +
                         ", expected " + expected.to_string()),
      stream_{std::move(stream)},
      actual_{actual} {}

EventIdReused::EventIdReused(std::string event_id)
    : std::runtime_error("event id " + event_id +
                         " is already stored with other content or in another place"),
      event_id_{std::move(event_id)} {}

bool is_valid_stream_id(std::string_view stream) {
    auto dash = stream.find('-');
    if (stream.empty() || stream.size() > kMaxStreamIdLength || dash == 0 ||
        dash == std::string_view::npos || dash + 1 == stream.size()) {
        return false;
    }
    for (char c : stream) {
        if (!is_id_char(c)) return false;
    }
    return true;
}

std::string category_of(std::string_view stream) {
    return std::string{stream.substr(0, stream.find('-'))};
}

}  // namespace ordo::eventstore
