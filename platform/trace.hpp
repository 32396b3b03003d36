#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <string_view>

namespace ordo::platform {

// W3C trace context (traceparent). Parsing is strict: a header that does not follow the
// specification yields nullopt and the caller starts a new trace.
struct TraceContext {
    std::array<std::uint8_t, 16> trace_id{};
    std::array<std::uint8_t, 8> span_id{};
    std::uint8_t flags = 0x01;

    static std::optional<TraceContext> parse(std::string_view traceparent);
    std::string traceparent() const;
    std::string trace_id_hex() const;
    std::string span_id_hex() const;
    bool sampled() const { return (flags & 0x01) != 0; }
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
