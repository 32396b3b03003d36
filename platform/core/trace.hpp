// W3C trace context: traceparent and tracestate parsed strictly and formatted, and fresh
// trace, span and UUID ids.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace ordo::platform {

// W3C trace context, Level 1 (traceparent). Parsing is strict: a header that does not follow
// the specification yields nullopt and the caller starts a new trace. Versions above 00 are
// read by the version 00 rules (the first four fields, then "-" or the end), as the
// specification asks; what Ordo sends is always version 00.
struct TraceContext {
    std::array<std::uint8_t, 16> trace_id{};
    std::array<std::uint8_t, 8> span_id{};
    std::uint8_t flags = 0x01;
    // The validated, formatted tracestate that came with the trace; "" when none. Carried
    // along unchanged to child spans and outgoing requests.
    std::string tracestate;

    static std::optional<TraceContext> parse(std::string_view traceparent);
    std::string traceparent() const;
    std::string trace_id_hex() const;
    std::string span_id_hex() const;
    bool sampled() const { return (flags & 0x01) != 0; }
};

// Lower-case hex ids as they appear in traceparent and in event metadata.
std::optional<std::array<std::uint8_t, 16>> parse_trace_id(std::string_view hex);
std::optional<std::array<std::uint8_t, 8>> parse_span_id(std::string_view hex);
std::string to_hex(const std::array<std::uint8_t, 8>& id);

// The W3C tracestate list: vendor key=value members, the most recently updated first.
// parse() refuses the whole header (nullopt) when any member is malformed, a key repeats or
// there are more than kMaxMembers: the specification lets a vendor discard such a header,
// and a half-understood one is not worth propagating.
class TraceState {
   public:
    static constexpr std::size_t kMaxMembers = 32;
    static constexpr std::size_t kMaxKeyBytes = 256;
    static constexpr std::size_t kMaxValueBytes = 256;

    // One header value, or several header lines joined with ",".
    static std::optional<TraceState> parse(std::string_view header);
    // Several tracestate header lines of one request, in order.
    static std::optional<TraceState> parse(const std::vector<std::string_view>& headers);

    static bool valid_key(std::string_view key);
    static bool valid_value(std::string_view value);

    // Adds or updates `key`; the member moves to the front, as an update must. When the list
    // is full, the last member makes room. False (nothing changed) for an invalid pair.
    bool put(std::string_view key, std::string_view value);
    bool erase(std::string_view key);
    std::optional<std::string> get(std::string_view key) const;

    const std::vector<std::pair<std::string, std::string>>& members() const { return members_; }
    bool empty() const { return members_.empty(); }
    // "k1=v1,k2=v2"; "" when empty.
    std::string format() const;

   private:
    std::vector<std::pair<std::string, std::string>> members_;
};

// Source of fresh ids; one per thread or guarded by the caller.
class IdGenerator {
   public:
    IdGenerator();
    explicit IdGenerator(std::uint64_t seed) : rng_{seed} {}
    TraceContext new_trace();
    // A child span in the same trace.
    TraceContext child_of(const TraceContext& parent);
    std::string uuid_v4();

   private:
    std::mt19937_64 rng_;
};

// Thread-safe helpers over a thread-local generator for code that has no generator of its own.
TraceContext new_trace();
TraceContext child_span(const TraceContext& parent);
std::string new_uuid();

}  // namespace ordo::platform
