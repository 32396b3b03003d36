// OTLP trace export: the JSON encoding, the exporter's batches, TLS and hanging collectors; the
// HTTP server's spans.

#include "platform/http/otlp.hpp"

#include <chrono>
#include <memory>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/http/http.hpp"
#include "platform/http/http_server.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/otlp_receiver.hpp"
#include "tests/support/tls.hpp"

namespace ordo::platform::otlp {
namespace {

using namespace std::chrono_literals;
using ordo::testing::eventually;
using ordo::testing::OtlpReceiver;

constexpr auto kGenerous = std::chrono::seconds(20);
constexpr const char* kTraceId = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kParentId = "b7ad6b7169203331";

Span sample_span(ManualClock& clock) {
    Span s;
    s.context = *TraceContext::parse(std::string("00-") + kTraceId + "-00f067aa0ba902b7-01");
    s.parent_span_id = parse_span_id(kParentId);
    s.name = "POST /v1/orders";
    s.kind = SpanKind::server;
    s.start = clock.now();
    clock.advance(1500us);
    s.end = clock.now();
    s.attributes = {{"http.request.method", std::string("POST")},
                    {"http.response.status_code", std::int64_t{202}},
                    {"ratio", 0.5},
                    {"flag", true}};
    return s;
}

double counter(metrics::Registry& registry, const std::string& name,
               const metrics::Labels& labels = {}) {
    return registry.counter(name, "", labels).value();
}

TEST(OtlpEncode, WritesTheJsonMappingOfExportTraceServiceRequest) {
    ManualClock clock;
    auto j = encode({sample_span(clock)}, "ordo-command");
    const auto& resource = j["resourceSpans"][0]["resource"];
    EXPECT_EQ(resource["attributes"][0]["key"], "service.name");
    EXPECT_EQ(resource["attributes"][0]["value"]["stringValue"], "ordo-command");
    const auto& span = j["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    EXPECT_EQ(span["traceId"], kTraceId);
    EXPECT_EQ(span["spanId"], "00f067aa0ba902b7");
    EXPECT_EQ(span["parentSpanId"], kParentId);
    EXPECT_EQ(span["name"], "POST /v1/orders");
    EXPECT_EQ(span["kind"], 2);
    EXPECT_EQ(span["startTimeUnixNano"], "1700000000000000000");
    EXPECT_EQ(span["endTimeUnixNano"], "1700000000001500000");
    EXPECT_EQ(span["status"]["code"], 0);
    EXPECT_EQ(span["attributes"][0]["value"]["stringValue"], "POST");
    EXPECT_EQ(span["attributes"][1]["value"]["intValue"], "202");
    EXPECT_EQ(span["attributes"][2]["value"]["doubleValue"], 0.5);
    EXPECT_EQ(span["attributes"][3]["value"]["boolValue"], true);
}

TEST(OtlpEncode, RootSpansHaveNoParentAndErrorsCarryTheirStatus) {
    ManualClock clock;
    Span s = sample_span(clock);
    s.parent_span_id.reset();
    s.error = true;
    s.status_message = "boom";
    auto span = encode({s}, "x")["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    EXPECT_FALSE(span.contains("parentSpanId"));
    EXPECT_EQ(span["status"]["code"], 2);
    EXPECT_EQ(span["status"]["message"], "boom");
}

TEST(OtlpEncode, TracesUrlAppendsTheSignalPath) {
    EXPECT_EQ(traces_url("http://collector:4318"), "http://collector:4318/v1/traces");
    EXPECT_EQ(traces_url("http://collector:4318/"), "http://collector:4318/v1/traces");
    EXPECT_EQ(traces_url("http://c:4318/base"), "http://c:4318/base/v1/traces");
}

TEST(OtlpHeaders, ParsesTheEnvironmentsListWithPercentEscapes) {
    auto headers = parse_headers(" Authorization = Bearer%20abc , x-tenant=a%2Cb");
    ASSERT_TRUE(headers.has_value());
    EXPECT_EQ(*headers, (ExportHeaders{{"Authorization", "Bearer abc"}, {"x-tenant", "a,b"}}));
    EXPECT_EQ(parse_headers(""), ExportHeaders{});
    EXPECT_EQ(parse_headers("a=b,"), (ExportHeaders{{"a", "b"}}));
    for (const char* bad : {"novalue", "=v", "a=%zz", "a=%2", "a=b%0d%0aX-Evil: 1", "a b=c",
                            "x:y=1", "Host=evil", "content-length=0"}) {
        EXPECT_EQ(parse_headers(bad), std::nullopt) << bad;
    }
}

TEST(OtlpExporter, SendsBatchesToTheCollector) {
    OtlpReceiver receiver;
    ManualClock clock;
    metrics::Registry registry;
    {
        Exporter exporter{{.url = traces_url(receiver.endpoint()),
                           .service_name = "ordo-test",
                           .max_batch = 3,
                           .flush_interval = 50ms},
                          Logger::null_logger(),
                          registry,
                          clock};
        for (int i = 0; i < 7; ++i) exporter.record(sample_span(clock));
        ASSERT_TRUE(eventually([&] { return receiver.spans().size() == 7; }, kGenerous));
    }
    auto spans = receiver.spans();
    EXPECT_EQ(spans[0]["service"], "ordo-test");
    EXPECT_EQ(spans[0]["traceId"], kTraceId);
    EXPECT_GE(receiver.requests(), 3);  // batches of at most three
    for (const auto& type : receiver.content_types()) EXPECT_EQ(type, "application/json");
    EXPECT_EQ(counter(registry, "ordo_spans_exported_total"), 7);
}

TEST(OtlpExporter, ExportsOverHttpsToACollectorItVerifies) {
    testing::TestPki pki;
    const auto identity = pki.issue();
    OtlpReceiver receiver{
        {.certificate_chain_file = identity.cert_file, .private_key_file = identity.key_file}};
    ASSERT_EQ(receiver.endpoint().rfind("https://", 0), 0u);
    ManualClock clock;
    metrics::Registry registry;
    {
        Exporter exporter{{.url = traces_url(receiver.endpoint()),
                           .service_name = "ordo-test",
                           .ca_file = pki.ca_file(),
                           .flush_interval = 50ms},
                          Logger::null_logger(),
                          registry,
                          clock};
        exporter.record(sample_span(clock));
        ASSERT_TRUE(eventually([&] { return receiver.spans().size() == 1; }, kGenerous));
    }
    EXPECT_EQ(receiver.spans()[0]["service"], "ordo-test");
    // Without the CA, the collector is not trusted: nothing is sent, the drop is counted.
    metrics::Registry untrusting;
    {
        Exporter exporter{{.url = traces_url(receiver.endpoint()),
                           .service_name = "ordo-test",
                           .flush_interval = 50ms},
                          Logger::null_logger(),
                          untrusting,
                          clock};
        exporter.record(sample_span(clock));
        ASSERT_TRUE(eventually(
            [&] {
                return counter(untrusting, "ordo_spans_dropped_total",
                               {{"reason", "export_failed"}}) == 1;
            },
            kGenerous));
    }
    EXPECT_EQ(receiver.spans().size(), 1u);
}

TEST(OtlpExporter, SendsWhatIsQueuedWhenDestroyed) {
    OtlpReceiver receiver;
    ManualClock clock;
    metrics::Registry registry;
    {
        Exporter exporter{{.url = traces_url(receiver.endpoint()),
                           .service_name = "ordo-test",
                           .flush_interval = std::chrono::hours(1)},
                          Logger::null_logger(),
                          registry,
                          clock};
        exporter.record(sample_span(clock));
    }
    EXPECT_EQ(receiver.spans().size(), 1u);
}

TEST(OtlpExporter, DropsAndCountsWhatDoesNotFitWhileTheCollectorHangs) {
    OtlpReceiver receiver;
    receiver.hold();
    ManualClock clock;
    metrics::Registry registry;
    Exporter exporter{{.url = traces_url(receiver.endpoint()),
                       .service_name = "ordo-test",
                       .max_queue = 2,
                       .max_batch = 1,
                       .flush_interval = 10ms,
                       .timeout = std::chrono::seconds(60)},
                      Logger::null_logger(),
                      registry,
                      clock};
    exporter.record(sample_span(clock));
    // The export thread holds that span in a request the collector does not answer.
    ASSERT_TRUE(eventually([&] { return receiver.waiting() == 1; }, kGenerous));
    for (int i = 0; i < 5; ++i) exporter.record(sample_span(clock));  // never blocks
    EXPECT_EQ(counter(registry, "ordo_spans_dropped_total", {{"reason", "queue_full"}}), 3);
    receiver.release();
    ASSERT_TRUE(eventually([&] { return receiver.spans().size() == 3; }, kGenerous));
}

TEST(OtlpExporter, CountsBatchesTheCollectorNeverGot) {
    std::string url;
    {
        OtlpReceiver gone;
        url = traces_url(gone.endpoint());
    }
    ManualClock clock;
    metrics::Registry registry;
    Exporter exporter{{.url = url, .service_name = "ordo-test", .flush_interval = 10ms},
                      Logger::null_logger(),
                      registry,
                      clock};
    for (int i = 0; i < 4; ++i) exporter.record(sample_span(clock));
    EXPECT_TRUE(eventually(
        [&] {
            return counter(registry, "ordo_spans_dropped_total", {{"reason", "export_failed"}}) ==
                   4;
        },
        kGenerous));
}

TEST(OtlpExporter, GivesUpOnAHangingCollectorWhenDestroyed) {
    OtlpReceiver receiver;
    receiver.hold();
    ManualClock clock;
    metrics::Registry registry;
    {
        Exporter exporter{{.url = traces_url(receiver.endpoint()),
                           .service_name = "ordo-test",
                           .max_batch = 1,
                           .flush_interval = 10ms,
                           .timeout = 200ms},
                          Logger::null_logger(),
                          registry,
                          clock};
        for (int i = 0; i < 5; ++i) exporter.record(sample_span(clock));
    }
    // Every span is accounted for: one batch timed out, the rest were dropped with it.
    EXPECT_EQ(counter(registry, "ordo_spans_dropped_total", {{"reason", "export_failed"}}), 5);
    EXPECT_EQ(counter(registry, "ordo_spans_exported_total"), 0);
    receiver.release();
}

class ServerSpans : public ::testing::Test {
   protected:
    void SetUp() override {
        exporter_ =
            std::make_unique<Exporter>(ExporterOptions{.url = traces_url(receiver_.endpoint()),
                                                       .service_name = "ordo-test",
                                                       .flush_interval = 10ms},
                                       Logger::null_logger(), registry_, clock_);
        http::Router router;
        router.add("POST", "/v1/things/{id}", http::Access::open, [](http::Request&) {
            return http::Response::json(202, {{"ok", true}});
        });
        router.add("GET", "/v1/broken", http::Access::open,
                   [](http::Request&) { return http::problem(503, "unavailable", "down"); });
        http::ServerOptions options;
        options.spans = exporter_.get();
        options.component = "things";
        server_ = std::make_unique<http::Server>(options, std::move(router), Logger::null_logger(),
                                                 registry_);
        server_->start();
    }
    void TearDown() override {
        server_->stop();
        server_.reset();
        exporter_.reset();
    }

    nlohmann::json only_span_of(const std::string& trace_id) {
        EXPECT_TRUE(
            eventually([&] { return !receiver_.spans_of_trace(trace_id).empty(); }, kGenerous));
        auto spans = receiver_.spans_of_trace(trace_id);
        EXPECT_EQ(spans.size(), 1u);
        return spans.empty() ? nlohmann::json::object() : spans.front();
    }

    OtlpReceiver receiver_;
    SystemClock clock_;
    metrics::Registry registry_;
    std::unique_ptr<Exporter> exporter_;
    std::unique_ptr<http::Server> server_;
};

TEST_F(ServerSpans, ContinueTheCallersTraceWithTheConventionalAttributes) {
    ordo::testing::HttpClient client{"127.0.0.1", server_->port()};
    std::string parent = std::string("00-") + kTraceId + "-" + kParentId + "-01";
    auto res = client.request("POST", "/v1/things/a1?x=1", "{}",
                              {{"traceparent", parent},
                               {"tracestate", "congo=t61rcWkgMzE"},
                               {"tracestate", "rojo=00f067aa0ba902b7"},
                               {"User-Agent", "span-test/1"}});
    ASSERT_EQ(res.status, 202);
    auto answered = TraceContext::parse(res.header("traceparent"));
    ASSERT_TRUE(answered);
    EXPECT_EQ(answered->trace_id_hex(), kTraceId);
    EXPECT_NE(answered->span_id_hex(), kParentId);
    EXPECT_EQ(res.header("tracestate"), "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");

    auto span = only_span_of(kTraceId);
    EXPECT_EQ(span["name"], "POST /v1/things/{id}");
    EXPECT_EQ(span["kind"], 2);
    EXPECT_EQ(span["spanId"], answered->span_id_hex());
    EXPECT_EQ(span["parentSpanId"], kParentId);
    EXPECT_EQ(span["service"], "ordo-test");
    EXPECT_EQ(span["traceState"], "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7");
    EXPECT_EQ(OtlpReceiver::attribute(span, "http.request.method")->value("stringValue", ""),
              "POST");
    EXPECT_EQ(OtlpReceiver::attribute(span, "http.route")->value("stringValue", ""),
              "/v1/things/{id}");
    EXPECT_EQ(OtlpReceiver::attribute(span, "http.response.status_code")->value("intValue", ""),
              "202");
    EXPECT_EQ(OtlpReceiver::attribute(span, "url.path")->value("stringValue", ""), "/v1/things/a1");
    EXPECT_EQ(OtlpReceiver::attribute(span, "server.address")->value("stringValue", ""),
              "127.0.0.1");
    EXPECT_EQ(OtlpReceiver::attribute(span, "client.address")->value("stringValue", ""),
              "127.0.0.1");
    EXPECT_EQ(OtlpReceiver::attribute(span, "user_agent.original")->value("stringValue", ""),
              "span-test/1");
    EXPECT_EQ(span["status"]["code"], 0);
    EXPECT_LE(std::stoll(span["startTimeUnixNano"].get<std::string>()),
              std::stoll(span["endTimeUnixNano"].get<std::string>()));
}

TEST_F(ServerSpans, StartANewTraceForAnInvalidOrRepeatedTraceparent) {
    ordo::testing::HttpClient client{"127.0.0.1", server_->port()};
    std::string parent = std::string("00-") + kTraceId + "-" + kParentId + "-01";
    auto repeated = client.request("POST", "/v1/things/a1", "{}",
                                   {{"traceparent", parent}, {"traceparent", parent}});
    auto upper =
        client.request("POST", "/v1/things/a1", "{}",
                       {{"traceparent", "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01"},
                        {"tracestate", "foo=1"}});
    for (const auto& res : {repeated, upper}) {
        auto ctx = TraceContext::parse(res.header("traceparent"));
        ASSERT_TRUE(ctx);
        EXPECT_NE(ctx->trace_id_hex(), kTraceId);
        EXPECT_EQ(res.header("tracestate"), "");  // a new trace starts without the old state
        auto span = only_span_of(ctx->trace_id_hex());
        EXPECT_FALSE(span.contains("parentSpanId"));
    }
}

TEST_F(ServerSpans, KeepTheTraceButDropAnInvalidTracestate) {
    ordo::testing::HttpClient client{"127.0.0.1", server_->port()};
    std::string parent = std::string("00-") + kTraceId + "-" + kParentId + "-01";
    auto res = client.request("POST", "/v1/things/a1", "{}",
                              {{"traceparent", parent}, {"tracestate", "foo=1,foo=2"}});
    EXPECT_EQ(TraceContext::parse(res.header("traceparent"))->trace_id_hex(), kTraceId);
    EXPECT_EQ(res.header("tracestate"), "");
}

TEST_F(ServerSpans, MarkServerErrorsAndNameUnroutedRequestsByMethod) {
    ordo::testing::HttpClient client{"127.0.0.1", server_->port()};
    auto broken = client.get("/v1/broken");
    ASSERT_EQ(broken.status, 503);
    auto span = only_span_of(TraceContext::parse(broken.header("traceparent"))->trace_id_hex());
    EXPECT_EQ(span["name"], "GET /v1/broken");
    EXPECT_EQ(span["status"]["code"], 2);
    EXPECT_EQ(OtlpReceiver::attribute(span, "error.type")->value("stringValue", ""), "503");

    auto missing = client.get("/nowhere/42");
    ASSERT_EQ(missing.status, 404);
    auto unrouted =
        only_span_of(TraceContext::parse(missing.header("traceparent"))->trace_id_hex());
    EXPECT_EQ(unrouted["name"], "GET");  // not the raw path: names stay bounded
    EXPECT_FALSE(OtlpReceiver::attribute(unrouted, "http.route"));
    EXPECT_EQ(unrouted["status"]["code"], 0);
}

TEST_F(ServerSpans, RequestsDoNotWaitForAHangingCollector) {
    receiver_.hold();
    ordo::testing::HttpClient client{"127.0.0.1", server_->port(), std::chrono::seconds(10)};
    // Far more requests than one export batch; every one is answered while the exporter's
    // request to the collector hangs.
    for (int i = 0; i < 50; ++i) {
        ASSERT_EQ(client.request("POST", "/v1/things/x", "{}").status, 202) << i;
    }
    ASSERT_TRUE(eventually([&] { return receiver_.waiting() >= 1; }, kGenerous));
    receiver_.release();
}

}  // namespace
}  // namespace ordo::platform::otlp
