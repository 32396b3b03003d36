// The query service's built-in trace collector: POST /v1/traces takes spans from every
// service, so that the console can draw a trace across them (query/span_store.hpp holds them).
#pragma once

#include "platform/core/log.hpp"
#include "platform/http/http.hpp"
#include "query/span_store.hpp"

namespace ordo::platform::metrics {
class Counter;
class Registry;
}  // namespace ordo::platform::metrics

namespace ordo::query {

// POST /v1/traces, telemetry scope: an OTLP/HTTP JSON export request (what Ordo's exporters
// send; point OTEL_EXPORTER_OTLP_ENDPOINT at the query service). 200 with an empty
// ExportTraceServiceResponse once every span is stored; 400 bad_request naming the first
// malformed field, 400 malformed_json, 415 for protobuf (only JSON is spoken here), and
// nothing stored in each of those cases. Spans are kept in memory only, a bounded number of
// recent traces: a console's view of the present, not an archive (send them to a real
// collector for that). Counts spans accepted (ordo_spans_collected_total) and requests
// refused (ordo_span_exports_refused_total).
class TraceCollector {
   public:
    TraceCollector(SpanStore& store, platform::Logger log, platform::metrics::Registry& metrics);

    void register_routes(platform::http::Router& router);

   private:
    platform::http::Response collect(platform::http::Request& request);

    SpanStore& store_;
    platform::Logger log_;
    platform::metrics::Counter& stored_;
    platform::metrics::Counter& refused_;
};

}  // namespace ordo::query
