// traceparent and tracestate headers: parsing never crashes, what is accepted formats back
// to a header that parses to the same context, and tracestate stays within its limits.
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "fuzz/fuzz.hpp"
#include "platform/core/trace.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    using ordo::platform::TraceContext;
    using ordo::platform::TraceState;
    std::string_view text{reinterpret_cast<const char*>(data), size};

    if (auto context = TraceContext::parse(text)) {
        auto again = TraceContext::parse(context->traceparent());
        ORDO_FUZZ_CHECK(again && again->trace_id == context->trace_id &&
                        again->span_id == context->span_id && again->flags == context->flags);
    }

    // Header lines split at '\n', as a request with several tracestate lines sends them.
    std::vector<std::string_view> lines;
    for (std::size_t start = 0; start <= text.size();) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        lines.push_back(text.substr(start, end - start));
        start = end + 1;
    }
    if (auto state = TraceState::parse(lines)) {
        ORDO_FUZZ_CHECK(state->members().size() <= TraceState::kMaxMembers);
        auto again = TraceState::parse(state->format());
        ORDO_FUZZ_CHECK(state->empty() ? (!again || again->empty())
                                       : (again && again->members() == state->members()));
        for (const auto& [key, value] : state->members()) {
            ORDO_FUZZ_CHECK(TraceState::valid_key(key) && TraceState::valid_value(value));
        }
    }
    return 0;
}
