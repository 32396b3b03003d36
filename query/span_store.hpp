// The built-in trace collector's pure parts: spans read from OTLP/HTTP JSON export requests,
// all or nothing, and a bounded in-memory store of recent traces for the operator console.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <nlohmann/json_fwd.hpp>

namespace ordo::query {

// One finished span of any service, as the console draws it. Ids are lowercase hex; times are
// nanoseconds since the Unix epoch, 0 <= start_ns <= end_ns.
struct StoredSpan {
    std::string trace_id;        // 32 hex digits, not all zero
    std::string span_id;         // 16 hex digits, not all zero
    std::string parent_span_id;  // 16 hex digits; empty for a root
    std::string service;         // the resource's service.name; "unknown" when it has none
    std::string name;
    std::string kind;  // server, client, internal, producer, consumer or unspecified
    std::int64_t start_ns = 0;
    std::int64_t end_ns = 0;
    bool error = false;  // status ERROR
    std::string status_message;
    // In the order sent; scalars as their text, arrays and key-value lists as compact JSON.
    std::vector<std::pair<std::string, std::string>> attributes;

    bool operator==(const StoredSpan&) const = default;
};

// What one export request may carry. The span count bounds the work of one request and is
// refused beyond: the whole request, so that the exporter learns it (SDKs send batches of 512).
inline constexpr std::size_t kMaxSpansPerRequest = 10'000;
// The sizes bound a span's memory in the store: about 38 KB of text at most.
// A waterfall needs the span more than all of a long text, so these are not refused: text
// beyond them is cut at a UTF-8 character boundary and ends in "…", within the limit.
inline constexpr std::size_t kMaxSpanNameBytes = 256;
inline constexpr std::size_t kMaxServiceNameBytes = 128;
inline constexpr std::size_t kMaxStatusMessageBytes = 1'024;
inline constexpr std::size_t kMaxAttributeKeyBytes = 128;
inline constexpr std::size_t kMaxAttributeValueBytes = 1'024;
// A span keeps its first 32 attributes; the rest are checked like them, then dropped.
inline constexpr std::size_t kMaxAttributesPerSpan = 32;

// The spans of an ExportTraceServiceRequest in OTLP's JSON mapping (POST /v1/traces), in the
// order sent: resourceSpans[].scopeSpans[] (or the older instrumentationLibrarySpans[]), then
// spans[]. Enums come as numbers or names, 64-bit integers as numbers or decimal strings, and
// an absent or null field is its default, as the mapping allows. All or nothing: one malformed
// span, or more than kMaxSpansPerRequest, throws platform::InvalidInput naming the path, e.g.
// "resourceSpans[0].scopeSpans[1].spans[3].traceId: expected 32 hex digits".
std::vector<StoredSpan> decode_otlp_traces(const nlohmann::json& request);

// The most recent spans, whole traces at a time. Memory is bounded by max_spans: when full,
// whole traces are evicted in the order they first arrived (a trace that still gets spans
// keeps its place), and a trace takes at most max_spans_per_trace spans, the rest dropped and
// counted. A span sent again with the same trace and span id replaces the earlier one, so an
// exporter's retry does not duplicate it. Thread-safe; each add() is applied under one lock,
// so a reader never sees part of a batch.
class SpanStore {
   public:
    struct Stats {
        std::size_t spans = 0;
        std::size_t traces = 0;
        std::size_t bytes = 0;  // estimated
        std::uint64_t evicted_traces = 0;
        std::uint64_t dropped_spans = 0;  // beyond max_spans_per_trace
    };

    // Both bounds are at least 1; a trace never takes more than max_spans. `max_bytes` bounds
    // the spans' estimated memory (strings and the maps' nodes) the same way: a span may be
    // up to ~38 KB, so the span count alone would allow gigabytes. A span sent again with
    // more text may pass it by that span's growth until the next add evicts.
    explicit SpanStore(std::size_t max_spans = 200'000, std::size_t max_spans_per_trace = 2'000,
                       std::size_t max_bytes = 64 * 1024 * 1024);

    // Spans as decode_otlp_traces() returns them.
    void add(std::vector<StoredSpan> spans);
    // The spans of one trace (its id in either case) sorted by start, then span id; empty when
    // the trace is unknown or evicted.
    std::vector<StoredSpan> trace(const std::string& trace_id) const;
    Stats stats() const;

   private:
    struct Trace {
        std::unordered_map<std::string, StoredSpan> spans;  // by span id
        std::size_t bytes = 0;
    };

    void add_locked(StoredSpan span);
    void evict_oldest_locked();

    const std::size_t max_spans_;
    const std::size_t max_spans_per_trace_;
    const std::size_t max_bytes_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Trace> traces_;  // by trace id
    std::deque<std::string> arrival_;                // trace ids, the first to arrive in front
    std::size_t spans_ = 0;                          // the spans of all of traces_
    std::size_t bytes_ = 0;                          // their estimated memory
    std::uint64_t evicted_traces_ = 0;
    std::uint64_t dropped_spans_ = 0;
};

}  // namespace ordo::query
