// Spans, and their export to an OpenTelemetry collector as OTLP/HTTP JSON from a bounded
// queue on a background thread, so that a slow collector never delays a request.
#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "platform/core/trace.hpp"

namespace ordo::platform::metrics {
class Registry;
}

// Spans, and their export as OTLP/HTTP JSON (POST {endpoint}/v1/traces).
namespace ordo::platform::otlp {

// The OTLP numbering (opentelemetry.proto.trace.v1.Span.SpanKind).
enum class SpanKind { internal = 1, server = 2, client = 3, producer = 4, consumer = 5 };

using AttributeValue = std::variant<std::string, std::int64_t, double, bool>;
using Attributes = std::vector<std::pair<std::string, AttributeValue>>;

struct Span {
    TraceContext context;  // the trace and this span's id
    std::optional<std::array<std::uint8_t, 8>> parent_span_id;
    std::string name;
    SpanKind kind = SpanKind::internal;
    Clock::time_point start{};
    Clock::time_point end{};
    Attributes attributes;
    bool error = false;  // status ERROR; otherwise UNSET, as the conventions ask of servers
    std::string status_message;
};

// The ExportTraceServiceRequest of `spans`, in OTLP's JSON mapping (hex ids, times in
// nanoseconds as strings), under one resource named `service_name`.
nlohmann::json encode(const std::vector<Span>& spans, const std::string& service_name);

// Where spans go: the endpoint of OTEL_EXPORTER_OTLP_ENDPOINT plus "/v1/traces".
std::string traces_url(std::string endpoint);

using ExportHeaders = std::vector<std::pair<std::string, std::string>>;

// OTEL_EXPORTER_OTLP_HEADERS' format: "key=value,key2=value2", values percent-encoded,
// blanks around keys and values and empty entries ignored. nullopt for a malformed list: an
// entry without '=', a key that is no header name (or one the exporter sets itself: Host,
// Content-Length, Content-Type, Transfer-Encoding, Connection), a bad escape, a value with a
// control character.
std::optional<ExportHeaders> parse_headers(std::string_view list);

struct ExporterOptions {
    std::string url;           // the full traces URL, http:// or https://
    std::string service_name;  // resource attribute service.name
    ExportHeaders headers;     // sent with every export (e.g. Authorization)
    std::string ca_file;       // https: the CAs to trust instead of the system's (PEM)
    std::size_t max_queue = 2048;
    std::size_t max_batch = 512;
    std::chrono::milliseconds flush_interval{1000};  // a partial batch waits at most this
    std::chrono::milliseconds timeout{5000};         // one export request
    std::chrono::milliseconds max_backoff{30'000};   // between attempts while it fails
};

// Receives finished spans. record() only takes a lock and appends to a bounded queue, so
// a slow or absent collector never delays the caller: when the queue is full the span is
// dropped and counted (ordo_spans_dropped_total). One background thread sends batches;
// a failed batch is dropped and counted too, and the thread backs off before trying again.
// Thread-safe. The Registry and Clock must outlive it.
class Exporter {
   public:
    // Throws platform::InvalidInput when the CA file cannot be loaded.
    Exporter(ExporterOptions options, Logger log, metrics::Registry& registry, const Clock& clock);
    // Sends what is queued (one attempt, bounded by the timeout), then joins the thread.
    ~Exporter();
    Exporter(const Exporter&) = delete;
    Exporter& operator=(const Exporter&) = delete;

    void record(Span span);
    // Wall-clock time for span timestamps.
    Clock::time_point now() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::platform::otlp
