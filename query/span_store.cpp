// OTLP/HTTP JSON export requests read strictly into spans, and the store of recent traces:
// a map of traces plus their arrival order, so that eviction is first in, first out.
#include "query/span_store.hpp"

#include <algorithm>
#include <array>
#include <charconv>
#include <limits>
#include <optional>
#include <string_view>
#include <system_error>
#include <tuple>

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"

namespace ordo::query {
namespace {

using nlohmann::json;

// Array and key-value list attribute values nest; rendering stops this deep, and at the
// value's size limit, so a deep or huge value costs neither stack nor time. What lies beyond
// is not rendered, and so not checked either.
constexpr int kMaxValueDepth = 8;

constexpr std::string_view kEllipsis = "\xE2\x80\xA6";  // "…"

// The OTLP numbering (opentelemetry.proto.trace.v1.Span.SpanKind, Status.StatusCode).
constexpr std::array<std::string_view, 6> kKindNames = {
    "SPAN_KIND_UNSPECIFIED", "SPAN_KIND_INTERNAL", "SPAN_KIND_SERVER",
    "SPAN_KIND_CLIENT",      "SPAN_KIND_PRODUCER", "SPAN_KIND_CONSUMER"};
constexpr std::array<const char*, 6> kKinds = {"unspecified", "internal", "server",
                                               "client",      "producer", "consumer"};
constexpr std::array<std::string_view, 3> kStatusCodeNames = {"STATUS_CODE_UNSET", "STATUS_CODE_OK",
                                                              "STATUS_CODE_ERROR"};
constexpr std::size_t kStatusError = 2;

[[noreturn]] void reject(const std::string& path, std::string_view problem) {
    throw platform::InvalidInput{path + ": " + std::string{problem}};
}

// Paths as the message shows them: "resourceSpans[0].scopeSpans[1].spans[3].traceId".
std::string member(const std::string& path, std::string_view name) {
    return path.empty() ? std::string{name} : path + "." + std::string{name};
}

std::string element(const std::string& path, std::size_t index) {
    return path + "[" + std::to_string(index) + "]";
}

// The mapping omits a field at its default and reads null as the default: both are nullptr.
const json* field(const json& object, const char* name) {
    auto it = object.find(name);
    if (it == object.end() || it->is_null()) return nullptr;
    return &*it;
}

const json& expect_object(const json& value, const std::string& path) {
    if (!value.is_object()) reject(path, "expected an object");
    return value;
}

const json::array_t& array_field(const json& object, const char* name, const std::string& path) {
    static const json::array_t kNone;
    const json* value = field(object, name);
    if (value == nullptr) return kNone;
    if (!value->is_array()) reject(member(path, name), "expected an array");
    return value->get_ref<const json::array_t&>();
}

std::string string_field(const json& object, const char* name, const std::string& path) {
    const json* value = field(object, name);
    if (value == nullptr) return {};
    if (!value->is_string()) reject(member(path, name), "expected a string");
    return value->get<std::string>();
}

// At most `limit` bytes. A cut text ends in "…" so that the console shows something is
// missing; the cut falls on a character boundary, so valid UTF-8 stays valid.
std::string truncated(std::string text, std::size_t limit) {
    if (text.size() <= limit) return text;
    std::size_t cut = limit - std::min(limit, kEllipsis.size());
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    text.resize(cut);
    text += kEllipsis;
    return text;
}

std::string ascii_lowercase(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c + 32) : c; });
    return text;
}

bool is_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

// A trace or span id: hex (OTLP departs here from protobuf's JSON mapping, which would write
// base64) of exactly `digits` digits, not all zero; lowercased. Empty when `optional` and
// absent or "".
std::string hex_id(const json& span, const char* name, std::size_t digits, bool optional,
                   const std::string& path) {
    const std::string expected = "expected " + std::to_string(digits) + " hex digits";
    const json* value = field(span, name);
    if (value == nullptr && optional) return {};
    if (value == nullptr || !value->is_string()) reject(member(path, name), expected);
    const auto& text = value->get_ref<const std::string&>();
    if (text.empty() && optional) return {};
    if (text.size() != digits || !std::all_of(text.begin(), text.end(), is_hex)) {
        reject(member(path, name), expected);
    }
    if (text.find_first_not_of('0') == std::string::npos) {
        reject(member(path, name), "an all-zero id is invalid");
    }
    return ascii_lowercase(text);
}

// A 64-bit integer: a JSON integer, or the decimal string the mapping writes int64 and
// fixed64 as. nullopt when it is neither or out of range.
std::optional<std::int64_t> int64_of(const json& value) {
    if (value.is_number_unsigned()) {
        auto n = value.get<std::uint64_t>();
        if (n > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
            return std::nullopt;
        }
        return static_cast<std::int64_t>(n);
    }
    if (value.is_number_integer()) return value.get<std::int64_t>();
    if (!value.is_string()) return std::nullopt;
    const auto& text = value.get_ref<const std::string&>();
    std::int64_t n = 0;
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), n);
    if (error != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return n;
}

std::int64_t unix_nanos(const json& span, const char* name, const std::string& path) {
    const json* value = field(span, name);
    if (value == nullptr) return 0;
    auto n = int64_of(*value);
    if (!n) reject(member(path, name), "expected nanoseconds since the epoch as an integer");
    if (*n < 0) reject(member(path, name), "expected a time not before the epoch");
    return *n;
}

// An enum as its number or its name in `names`; the index. Absent: 0.
template <std::size_t N>
std::size_t enum_field(const json& object, const char* name,
                       const std::array<std::string_view, N>& names, const std::string& path) {
    const json* value = field(object, name);
    if (value == nullptr) return 0;
    if (value->is_number_integer()) {
        auto n = value->get<std::int64_t>();
        if (n >= 0 && static_cast<std::size_t>(n) < N) return static_cast<std::size_t>(n);
    } else if (value->is_string()) {
        auto it = std::find(names.begin(), names.end(), value->get_ref<const std::string&>());
        if (it != names.end()) return static_cast<std::size_t>(it - names.begin());
    }
    reject(member(path, name), "expected 0 to " + std::to_string(N - 1) + " or " +
                                   std::string{names.front()} + " to " + std::string{names.back()});
}

std::string json_text(const std::string& text) {
    return json(text).dump(-1, ' ', false, json::error_handler_t::replace);
}

// Appends an AnyValue: scalars as themselves (quoted when `as_json`), arrays and key-value
// lists as compact JSON; an empty value as "" (null when `as_json`).
void render(const json& any, const std::string& path, int depth, bool as_json, std::string& out) {
    expect_object(any, path);
    if (const json* v = field(any, "stringValue")) {
        if (!v->is_string()) reject(member(path, "stringValue"), "expected a string");
        out += as_json ? json_text(v->get<std::string>()) : v->get<std::string>();
    } else if (const json* v = field(any, "intValue")) {
        auto n = int64_of(*v);
        if (!n) reject(member(path, "intValue"), "expected a 64-bit integer");
        out += std::to_string(*n);
    } else if (const json* v = field(any, "doubleValue")) {
        double ignored = 0;
        if (v->is_number()) {
            out += v->dump();
        } else if (const auto* text = v->get_ptr<const std::string*>();
                   text != nullptr &&
                   (*text == "NaN" || *text == "Infinity" || *text == "-Infinity" ||
                    std::from_chars(text->data(), text->data() + text->size(), ignored).ptr ==
                        text->data() + text->size())) {
            out += as_json ? json_text(*text) : *text;
        } else {
            reject(member(path, "doubleValue"), "expected a number");
        }
    } else if (const json* v = field(any, "boolValue")) {
        if (!v->is_boolean()) reject(member(path, "boolValue"), "expected true or false");
        out += v->get<bool>() ? "true" : "false";
    } else if (const json* v = field(any, "bytesValue")) {
        if (!v->is_string()) reject(member(path, "bytesValue"), "expected base64 text");
        out += as_json ? json_text(v->get<std::string>()) : v->get<std::string>();
    } else if (const json* v = field(any, "arrayValue")) {
        auto list = member(path, "arrayValue");
        const auto& values = array_field(expect_object(*v, list), "values", list);
        out += '[';
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (out.size() > kMaxAttributeValueBytes) break;  // cut to the limit anyway
            if (i > 0) out += ',';
            if (depth + 1 >= kMaxValueDepth) {
                out += json_text(std::string{kEllipsis});
                break;
            }
            render(values[i], element(member(list, "values"), i), depth + 1, true, out);
        }
        out += ']';
    } else if (const json* v = field(any, "kvlistValue")) {
        auto list = member(path, "kvlistValue");
        const auto& values = array_field(expect_object(*v, list), "values", list);
        out += '{';
        for (std::size_t i = 0; i < values.size(); ++i) {
            if (out.size() > kMaxAttributeValueBytes) break;
            if (i > 0) out += ',';
            if (depth + 1 >= kMaxValueDepth) {
                out += json_text(std::string{kEllipsis}) + ":null";
                break;
            }
            auto entry = element(member(list, "values"), i);
            const auto& kv = expect_object(values[i], entry);
            out += json_text(string_field(kv, "key", entry));
            out += ':';
            if (const json* value = field(kv, "value")) {
                render(*value, member(entry, "value"), depth + 1, true, out);
            } else {
                out += "null";
            }
        }
        out += '}';
    } else {
        out += as_json ? "null" : "";  // an empty AnyValue, or a kind newer than this code
    }
}

// A list of KeyValue: the first `keep` as (key, text), each cut to its limit; all checked.
std::vector<std::pair<std::string, std::string>> attributes(const json& owner,
                                                            const std::string& path,
                                                            std::size_t keep) {
    std::vector<std::pair<std::string, std::string>> out;
    const auto& list = array_field(owner, "attributes", path);
    for (std::size_t i = 0; i < list.size(); ++i) {
        auto where = element(member(path, "attributes"), i);
        const auto& kv = expect_object(list[i], where);
        auto key = string_field(kv, "key", where);
        std::string text;
        if (const json* value = field(kv, "value")) {
            render(*value, member(where, "value"), 0, false, text);
        }
        if (out.size() < keep) {
            out.emplace_back(truncated(std::move(key), kMaxAttributeKeyBytes),
                             truncated(std::move(text), kMaxAttributeValueBytes));
        }
    }
    return out;
}

std::string service_name(const json& resource_spans, const std::string& path) {
    const json* resource = field(resource_spans, "resource");
    if (resource == nullptr) return "unknown";
    auto where = member(path, "resource");
    auto all =
        attributes(expect_object(*resource, where), where, std::numeric_limits<std::size_t>::max());
    for (auto& [key, value] : all) {
        if (key == "service.name" && !value.empty()) {
            return truncated(std::move(value), kMaxServiceNameBytes);
        }
    }
    return "unknown";
}

StoredSpan decode_span(const json& value, const std::string& path, const std::string& service) {
    const auto& span = expect_object(value, path);
    StoredSpan s;
    s.trace_id = hex_id(span, "traceId", 32, false, path);
    s.span_id = hex_id(span, "spanId", 16, false, path);
    s.parent_span_id = hex_id(span, "parentSpanId", 16, true, path);
    s.service = service;
    s.name = truncated(string_field(span, "name", path), kMaxSpanNameBytes);
    s.kind = kKinds[enum_field(span, "kind", kKindNames, path)];
    s.start_ns = unix_nanos(span, "startTimeUnixNano", path);
    s.end_ns = unix_nanos(span, "endTimeUnixNano", path);
    if (s.end_ns < s.start_ns) {
        reject(member(path, "endTimeUnixNano"), "expected a time not before startTimeUnixNano");
    }
    if (const json* status = field(span, "status")) {
        auto where = member(path, "status");
        expect_object(*status, where);
        s.error = enum_field(*status, "code", kStatusCodeNames, where) == kStatusError;
        s.status_message =
            truncated(string_field(*status, "message", where), kMaxStatusMessageBytes);
    }
    s.attributes = attributes(span, path, kMaxAttributesPerSpan);
    return s;
}

}  // namespace

std::vector<StoredSpan> decode_otlp_traces(const nlohmann::json& request) {
    if (!request.is_object()) reject("request", "expected a JSON object");
    std::vector<StoredSpan> spans;
    const auto& resources = array_field(request, "resourceSpans", "");
    for (std::size_t r = 0; r < resources.size(); ++r) {
        auto resource_path = element("resourceSpans", r);
        const auto& resource = expect_object(resources[r], resource_path);
        auto service = service_name(resource, resource_path);
        // Both lists are read when both come: a sender moving to the new name may send each.
        for (const char* scopes_name : {"scopeSpans", "instrumentationLibrarySpans"}) {
            const auto& scopes = array_field(resource, scopes_name, resource_path);
            for (std::size_t s = 0; s < scopes.size(); ++s) {
                auto scope_path = element(member(resource_path, scopes_name), s);
                const auto& list =
                    array_field(expect_object(scopes[s], scope_path), "spans", scope_path);
                for (std::size_t i = 0; i < list.size(); ++i) {
                    auto span_path = element(member(scope_path, "spans"), i);
                    if (spans.size() == kMaxSpansPerRequest) {
                        reject(span_path, "more than " + std::to_string(kMaxSpansPerRequest) +
                                              " spans in one request");
                    }
                    spans.push_back(decode_span(list[i], span_path, service));
                }
            }
        }
    }
    return spans;
}

namespace {

// What a kept span costs, roughly: its strings, and the map node and key that hold it.
std::size_t footprint(const StoredSpan& s) {
    std::size_t bytes = sizeof(StoredSpan) + sizeof(std::string) + 64 + s.trace_id.size() +
                        2 * s.span_id.size() + s.parent_span_id.size() + s.service.size() +
                        s.name.size() + s.kind.size() + s.status_message.size();
    for (const auto& [key, value] : s.attributes)
        bytes += 2 * sizeof(std::string) + key.size() + value.size();
    return bytes;
}

}  // namespace

SpanStore::SpanStore(std::size_t max_spans, std::size_t max_spans_per_trace, std::size_t max_bytes)
    : max_spans_{std::max<std::size_t>(max_spans, 1)},
      max_spans_per_trace_{std::clamp<std::size_t>(max_spans_per_trace, 1, max_spans_)},
      max_bytes_{std::max<std::size_t>(max_bytes, 1)} {}

void SpanStore::add(std::vector<StoredSpan> spans) {
    std::lock_guard lock{mutex_};
    for (auto& span : spans) add_locked(std::move(span));
}

void SpanStore::add_locked(StoredSpan span) {
    const auto size = footprint(span);
    if (auto known = traces_.find(span.trace_id); known != traces_.end()) {
        auto& trace = known->second;
        if (auto same = trace.spans.find(span.span_id); same != trace.spans.end()) {
            // A retry, or a corrected span: the newer wins.
            const auto old_size = footprint(same->second);
            same->second = std::move(span);
            trace.bytes += size - old_size;
            bytes_ += size - old_size;
            return;
        }
        if (trace.spans.size() >= max_spans_per_trace_) {
            ++dropped_spans_;
            return;
        }
    }
    // Room first, then the span: the trace it joins may be the oldest and go too, and then
    // the span starts it afresh at the back.
    while (!arrival_.empty() && (spans_ >= max_spans_ || bytes_ + size > max_bytes_))
        evict_oldest_locked();
    auto [trace, created] = traces_.try_emplace(span.trace_id);
    if (created) arrival_.push_back(span.trace_id);
    std::string span_id = span.span_id;
    trace->second.spans.emplace(std::move(span_id), std::move(span));
    trace->second.bytes += size;
    bytes_ += size;
    ++spans_;
}

void SpanStore::evict_oldest_locked() {
    auto oldest = traces_.find(arrival_.front());
    spans_ -= oldest->second.spans.size();
    bytes_ -= oldest->second.bytes;
    traces_.erase(oldest);
    arrival_.pop_front();
    ++evicted_traces_;
}

std::vector<StoredSpan> SpanStore::trace(const std::string& trace_id) const {
    auto id = ascii_lowercase(trace_id);
    std::vector<StoredSpan> spans;
    {
        std::lock_guard lock{mutex_};
        auto found = traces_.find(id);
        if (found == traces_.end()) return spans;
        spans.reserve(found->second.spans.size());
        for (const auto& [span_id, span] : found->second.spans) spans.push_back(span);
    }
    std::sort(spans.begin(), spans.end(), [](const StoredSpan& a, const StoredSpan& b) {
        return std::tie(a.start_ns, a.span_id) < std::tie(b.start_ns, b.span_id);
    });
    return spans;
}

SpanStore::Stats SpanStore::stats() const {
    std::lock_guard lock{mutex_};
    return {.spans = spans_,
            .traces = traces_.size(),
            .bytes = bytes_,
            .evicted_traces = evicted_traces_,
            .dropped_spans = dropped_spans_};
}

}  // namespace ordo::query
