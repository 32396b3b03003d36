#include "platform/trace.hpp"

#include <algorithm>

namespace ordo::platform {
namespace {

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    return -1;  // upper case is not valid in traceparent
}

template <std::size_t N>
bool parse_hex(std::string_view text, std::array<std::uint8_t, N>& out) {
    if (text.size() != N * 2) return false;
    for (std::size_t i = 0; i < N; ++i) {
        int hi = hex_value(text[2 * i]);
        int lo = hex_value(text[2 * i + 1]);
        if (hi < 0 || lo < 0) return false;
        out[i] = static_cast<std::uint8_t>(hi * 16 + lo);
    }
    return true;
}

template <std::size_t N>
std::string to_hex(const std::array<std::uint8_t, N>& bytes) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(N * 2);
    for (auto b : bytes) {
        out.push_back(kDigits[b >> 4]);
        out.push_back(kDigits[b & 0x0f]);
    }
    return out;
}

template <std::size_t N>
bool all_zero(const std::array<std::uint8_t, N>& bytes) {
    return std::all_of(bytes.begin(), bytes.end(), [](auto b) { return b == 0; });
}

template <std::size_t N>
void fill_random(std::mt19937_64& rng, std::array<std::uint8_t, N>& out) {
    do {
        for (std::size_t i = 0; i < N; i += 8) {
            std::uint64_t v = rng();
            for (std::size_t j = 0; j < 8 && i + j < N; ++j) out[i + j] = (v >> (8 * j)) & 0xff;
        }
    } while (all_zero(out));
}

}  // namespace

std::optional<TraceContext> TraceContext::parse(std::string_view header) {
    // version "-" trace-id "-" parent-id "-" flags; later versions may append "-" fields.
    if (header.size() < 55) return std::nullopt;
    std::array<std::uint8_t, 1> version{};
    if (!parse_hex(header.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
    if (version[0] == 0 && header.size() != 55) return std::nullopt;
    if (version[0] > 0 && header.size() > 55 && header[55] != '-') return std::nullopt;
    if (header[2] != '-' || header[35] != '-' || header[52] != '-') return std::nullopt;
    TraceContext ctx;
    std::array<std::uint8_t, 1> flags{};
    if (!parse_hex(header.substr(3, 32), ctx.trace_id) ||
        !parse_hex(header.substr(36, 16), ctx.span_id) || !parse_hex(header.substr(53, 2), flags)) {
        return std::nullopt;
    }
    if (all_zero(ctx.trace_id) || all_zero(ctx.span_id)) return std::nullopt;
    ctx.flags = flags[0];
    return ctx;
}

std::string TraceContext::traceparent() const {
    std::array<std::uint8_t, 1> f{flags};
    return "00-" + trace_id_hex() + "-" + span_id_hex() + "-" + to_hex(f);
}

std::string TraceContext::trace_id_hex() const {
    return to_hex(trace_id);
}
std::string TraceContext::span_id_hex() const {
    return to_hex(span_id);
}

IdGenerator::IdGenerator() : rng_{std::random_device{}()} {
    rng_.seed((static_cast<std::uint64_t>(std::random_device{}()) << 32) ^ std::random_device{}());
}

TraceContext IdGenerator::new_trace() {
    TraceContext ctx;
    fill_random(rng_, ctx.trace_id);
    fill_random(rng_, ctx.span_id);
    return ctx;
}

TraceContext IdGenerator::child_of(const TraceContext& parent) {
    TraceContext ctx = parent;
    fill_random(rng_, ctx.span_id);
    return ctx;
}

std::string IdGenerator::uuid_v4() {
    std::array<std::uint8_t, 16> b{};
    fill_random(rng_, b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    std::string hex = to_hex(b);
    return hex.substr(0, 8) + "-" + hex.substr(8, 4) + "-" + hex.substr(12, 4) + "-" +
           hex.substr(16, 4) + "-" + hex.substr(20);
}

namespace {
IdGenerator& thread_generator() {
    thread_local IdGenerator generator;
    return generator;
}
}  // namespace

TraceContext new_trace() {
    return thread_generator().new_trace();
}
TraceContext child_span(const TraceContext& parent) {
    return thread_generator().child_of(parent);
}
std::string new_uuid() {
    return thread_generator().uuid_v4();
}

}  // namespace ordo::platform
