// POST /v1/traces: OTLP/HTTP JSON in, spans into the store.
#include "query/trace_collector.hpp"

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"

namespace ordo::query {

using platform::http::Access;
using platform::http::Request;
using platform::http::Response;

TraceCollector::TraceCollector(SpanStore& store, platform::Logger log,
                               platform::metrics::Registry& metrics)
    : store_{store},
      log_{std::move(log)},
      stored_{metrics.counter(
          "ordo_spans_collected_total",
          "Spans the built-in collector accepted (the store keeps recent traces only)")},
      refused_{metrics.counter("ordo_span_exports_refused_total",
                               "Export requests the built-in collector refused, nothing stored")} {}

void TraceCollector::register_routes(platform::http::Router& router) {
    router.add("POST", "/v1/traces", Access::telemetry, [this](Request& r) { return collect(r); });
}

Response TraceCollector::collect(Request& request) {
    const auto type = request.header("content-type").value_or("");
    if (type.rfind("application/json", 0) != 0) {
        refused_.inc();
        return platform::http::problem(
            "unsupported_media_type",
            "send OTLP/HTTP with Content-Type application/json; protobuf is not spoken here");
    }
    auto body = nlohmann::json::parse(request.body, nullptr, false);
    if (body.is_discarded()) {
        refused_.inc();
        return platform::http::problem("malformed_json", "the body is not JSON");
    }
    std::vector<StoredSpan> spans;
    try {
        spans = decode_otlp_traces(body);
    } catch (const platform::InvalidInput& e) {
        refused_.inc();
        log_.info("spans refused", {{"error", e.what()}, {"caller", request.caller}});
        return platform::http::problem("bad_request", e.what());
    }
    stored_.inc(static_cast<double>(spans.size()));
    store_.add(std::move(spans));
    return Response::json(200, nlohmann::json::object());
}

}  // namespace ordo::query
