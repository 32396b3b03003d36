// The traceparent and tracestate grammars, hex ids, and ids drawn from a seeded or per-thread
// random generator.
#include "platform/core/trace.hpp"

#include <algorithm>

namespace ordo::platform {
namespace {

constexpr std::size_t kVersion00Length = 55;  // "00-" 32 "-" 16 "-" 2
// Only the sampled flag is defined at Level 1; other bits are not passed on.
constexpr std::uint8_t kKnownFlags = 0x01;
constexpr std::size_t kMaxTenantBytes = 241;
constexpr std::size_t kMaxSystemBytes = 14;

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
std::string hex_of(const std::array<std::uint8_t, N>& bytes) {
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

bool lcalpha(char c) {
    return c >= 'a' && c <= 'z';
}
bool digit(char c) {
    return c >= '0' && c <= '9';
}
bool key_char(char c) {
    return lcalpha(c) || digit(c) || c == '_' || c == '-' || c == '*' || c == '/';
}

// simple-key = lcalpha 0*255(lcalpha / DIGIT / "_" / "-" / "*" / "/")
bool valid_simple_key(std::string_view key) {
    if (key.empty() || key.size() > 256 || !lcalpha(key.front())) return false;
    return std::all_of(key.begin(), key.end(), key_char);
}

// multi-tenant-key = tenant-id "@" system-id
// tenant-id = (lcalpha / DIGIT) 0*240(...); system-id = lcalpha 0*13(...)
bool valid_multi_tenant_key(std::string_view key) {
    auto at = key.find('@');
    if (at == std::string_view::npos) return false;
    auto tenant = key.substr(0, at);
    auto system = key.substr(at + 1);
    if (tenant.empty() || tenant.size() > kMaxTenantBytes) return false;
    if (!lcalpha(tenant.front()) && !digit(tenant.front())) return false;
    if (!std::all_of(tenant.begin(), tenant.end(), key_char)) return false;
    if (system.empty() || system.size() > kMaxSystemBytes || !lcalpha(system.front())) {
        return false;
    }
    return std::all_of(system.begin(), system.end(), key_char);
}

bool ows(char c) {
    return c == ' ' || c == '\t';
}

std::string_view trim_ows(std::string_view s) {
    while (!s.empty() && ows(s.front())) s.remove_prefix(1);
    while (!s.empty() && ows(s.back())) s.remove_suffix(1);
    return s;
}

}  // namespace

std::optional<TraceContext> TraceContext::parse(std::string_view header) {
    // version "-" trace-id "-" parent-id "-" flags; later versions may append "-" fields.
    if (header.size() < kVersion00Length) return std::nullopt;
    std::array<std::uint8_t, 1> version{};
    if (!parse_hex(header.substr(0, 2), version) || version[0] == 0xff) return std::nullopt;
    if (version[0] == 0 && header.size() != kVersion00Length) return std::nullopt;
    if (version[0] > 0 && header.size() > kVersion00Length && header[kVersion00Length] != '-') {
        return std::nullopt;
    }
    if (header[2] != '-' || header[35] != '-' || header[52] != '-') return std::nullopt;
    TraceContext ctx;
    std::array<std::uint8_t, 1> flags{};
    if (!parse_hex(header.substr(3, 32), ctx.trace_id) ||
        !parse_hex(header.substr(36, 16), ctx.span_id) || !parse_hex(header.substr(53, 2), flags)) {
        return std::nullopt;
    }
    if (all_zero(ctx.trace_id) || all_zero(ctx.span_id)) return std::nullopt;
    ctx.flags = flags[0] & kKnownFlags;
    return ctx;
}

std::string TraceContext::traceparent() const {
    std::array<std::uint8_t, 1> f{static_cast<std::uint8_t>(flags & kKnownFlags)};
    return "00-" + trace_id_hex() + "-" + span_id_hex() + "-" + hex_of(f);
}

std::string TraceContext::trace_id_hex() const {
    return hex_of(trace_id);
}
std::string TraceContext::span_id_hex() const {
    return hex_of(span_id);
}

std::optional<std::array<std::uint8_t, 16>> parse_trace_id(std::string_view hex) {
    std::array<std::uint8_t, 16> id{};
    if (!parse_hex(hex, id) || all_zero(id)) return std::nullopt;
    return id;
}

std::optional<std::array<std::uint8_t, 8>> parse_span_id(std::string_view hex) {
    std::array<std::uint8_t, 8> id{};
    if (!parse_hex(hex, id) || all_zero(id)) return std::nullopt;
    return id;
}

std::string to_hex(const std::array<std::uint8_t, 8>& id) {
    return hex_of(id);
}

bool TraceState::valid_key(std::string_view key) {
    return key.find('@') == std::string_view::npos ? valid_simple_key(key)
                                                   : valid_multi_tenant_key(key);
}

// value = 0*255(chr) nblk-chr; nblk-chr = %x21-2B / %x2D-3C / %x3E-7E; chr = %x20 / nblk-chr
bool TraceState::valid_value(std::string_view value) {
    if (value.empty() || value.size() > kMaxValueBytes || value.back() == ' ') return false;
    return std::all_of(value.begin(), value.end(),
                       [](char c) { return c >= 0x20 && c <= 0x7e && c != ',' && c != '='; });
}

std::optional<TraceState> TraceState::parse(std::string_view header) {
    TraceState state;
    while (true) {
        auto comma = header.find(',');
        auto member = trim_ows(header.substr(0, comma));
        // Empty members ("a=1,,b=2") are allowed and mean nothing.
        if (!member.empty()) {
            auto eq = member.find('=');
            if (eq == std::string_view::npos) return std::nullopt;
            auto key = member.substr(0, eq);
            auto value = member.substr(eq + 1);
            if (!valid_key(key) || !valid_value(value)) return std::nullopt;
            if (state.get(key)) return std::nullopt;  // a repeated key makes the list invalid
            if (state.members_.size() == kMaxMembers) return std::nullopt;
            state.members_.emplace_back(std::string(key), std::string(value));
        }
        if (comma == std::string_view::npos) break;
        header.remove_prefix(comma + 1);
    }
    return state;
}

std::optional<TraceState> TraceState::parse(const std::vector<std::string_view>& headers) {
    std::string joined;
    for (std::size_t i = 0; i < headers.size(); ++i) {
        if (i > 0) joined += ',';
        joined += headers[i];
    }
    return parse(joined);
}

bool TraceState::put(std::string_view key, std::string_view value) {
    if (!valid_key(key) || !valid_value(value)) return false;
    erase(key);
    if (members_.size() == kMaxMembers) members_.pop_back();
    members_.insert(members_.begin(), {std::string(key), std::string(value)});
    return true;
}

bool TraceState::erase(std::string_view key) {
    auto it = std::find_if(members_.begin(), members_.end(),
                           [&](const auto& m) { return m.first == key; });
    if (it == members_.end()) return false;
    members_.erase(it);
    return true;
}

std::optional<std::string> TraceState::get(std::string_view key) const {
    for (const auto& [k, v] : members_) {
        if (k == key) return v;
    }
    return std::nullopt;
}

std::string TraceState::format() const {
    std::string out;
    for (const auto& [k, v] : members_) {
        if (!out.empty()) out += ',';
        out += k + '=' + v;
    }
    return out;
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
    std::string hex = hex_of(b);
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
