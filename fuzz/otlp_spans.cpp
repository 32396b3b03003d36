// OTLP/HTTP JSON export requests as the trace collector receives them: any body is spans or a
// refusal naming a path, never a crash or another exception; accepted spans keep every
// limit and stay valid UTF-8 after cutting; the store keeps its bounds, one span per id, and
// a trace's order.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "fuzz/fuzz.hpp"
#include "platform/core/errors.hpp"
#include "query/span_store.hpp"

namespace {

bool lowercase_hex_id(const std::string& id, std::size_t digits) {
    return id.size() == digits &&
           std::all_of(id.begin(), id.end(),
                       [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); }) &&
           id.find_first_not_of('0') != std::string::npos;
}

// The strict serializer throws on invalid UTF-8; the parser let only valid UTF-8 in.
bool valid_utf8(const std::string& text) {
    try {
        (void)nlohmann::json(text).dump();
        return true;
    } catch (const nlohmann::json::type_error&) {
        return false;
    }
}

bool within(const std::string& text, std::size_t limit) {
    return text.size() <= limit && valid_utf8(text);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    namespace q = ordo::query;
    std::string_view text{reinterpret_cast<const char*>(data), size};
    auto request = nlohmann::json::parse(text, nullptr, false);
    if (request.is_discarded()) return 0;

    std::vector<q::StoredSpan> spans;
    try {
        spans = q::decode_otlp_traces(request);
    } catch (const ordo::platform::InvalidInput& e) {
        std::string_view message = e.what();
        ORDO_FUZZ_CHECK(message.starts_with("request: ") || message.starts_with("resourceSpans"));
        ORDO_FUZZ_CHECK(message.find(": ") != std::string_view::npos);
        return 0;
    }

    ORDO_FUZZ_CHECK(spans.size() <= q::kMaxSpansPerRequest);
    for (const auto& s : spans) {
        ORDO_FUZZ_CHECK(lowercase_hex_id(s.trace_id, 32) && lowercase_hex_id(s.span_id, 16));
        ORDO_FUZZ_CHECK(s.parent_span_id.empty() || lowercase_hex_id(s.parent_span_id, 16));
        ORDO_FUZZ_CHECK(0 <= s.start_ns && s.start_ns <= s.end_ns);
        ORDO_FUZZ_CHECK(!s.service.empty() && within(s.service, q::kMaxServiceNameBytes));
        ORDO_FUZZ_CHECK(within(s.name, q::kMaxSpanNameBytes));
        ORDO_FUZZ_CHECK(within(s.status_message, q::kMaxStatusMessageBytes));
        ORDO_FUZZ_CHECK(s.kind == "server" || s.kind == "client" || s.kind == "internal" ||
                        s.kind == "producer" || s.kind == "consumer" || s.kind == "unspecified");
        ORDO_FUZZ_CHECK(s.attributes.size() <= q::kMaxAttributesPerSpan);
        for (const auto& [key, value] : s.attributes) {
            ORDO_FUZZ_CHECK(within(key, q::kMaxAttributeKeyBytes));
            ORDO_FUZZ_CHECK(within(value, q::kMaxAttributeValueBytes));
        }
    }

    constexpr std::size_t kMaxSpans = 16;
    constexpr std::size_t kMaxPerTrace = 4;
    q::SpanStore store{kMaxSpans, kMaxPerTrace};
    store.add(spans);
    auto first = store.stats();
    store.add(spans);  // an exporter's retry
    auto stats = store.stats();
    ORDO_FUZZ_CHECK(stats.spans <= kMaxSpans && stats.traces <= stats.spans);
    if (first.evicted_traces == 0) {
        // Nothing was evicted, so every span is there already or its trace is full: the retry
        // replaces or drops each again, and adds none.
        ORDO_FUZZ_CHECK(stats.spans == first.spans && stats.traces == first.traces &&
                        stats.evicted_traces == 0 &&
                        stats.dropped_spans == 2 * first.dropped_spans);
    }
    std::set<std::string> trace_ids;
    for (const auto& s : spans) trace_ids.insert(s.trace_id);
    std::size_t held = 0;
    for (const auto& id : trace_ids) {
        auto trace = store.trace(id);
        ORDO_FUZZ_CHECK(trace.size() <= kMaxPerTrace);
        std::set<std::string> span_ids;
        for (std::size_t i = 0; i < trace.size(); ++i) {
            ORDO_FUZZ_CHECK(trace[i].trace_id == id && span_ids.insert(trace[i].span_id).second);
            ORDO_FUZZ_CHECK(i == 0 || std::tie(trace[i - 1].start_ns, trace[i - 1].span_id) <
                                          std::tie(trace[i].start_ns, trace[i].span_id));
        }
        held += trace.size();
    }
    ORDO_FUZZ_CHECK(held == stats.spans);
    return 0;
}
