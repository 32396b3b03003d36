// The trace collector's pure parts: OTLP/HTTP JSON requests from Ordo's own exporter and from
// other SDKs, each refusal and its path, the limits; the store's bounds, eviction order,
// re-sent spans, order of a trace's spans, and concurrent use.

#include "query/span_store.hpp"

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/trace.hpp"
#include "platform/http/otlp.hpp"

namespace ordo::query {
namespace {

using nlohmann::json;

constexpr const char* kTraceId = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kSpanId = "00f067aa0ba902b7";
constexpr const char* kParentId = "b7ad6b7169203331";

// A span with every field the decoder reads, as OTLP's JSON mapping writes it.
json span_json(const std::string& span_id = kSpanId) {
    return {{"traceId", kTraceId},
            {"spanId", span_id},
            {"parentSpanId", kParentId},
            {"name", "GET /v1/orders/{id}"},
            {"kind", 2},
            {"startTimeUnixNano", "1700000000000000000"},
            {"endTimeUnixNano", "1700000000001500000"},
            {"attributes", {{{"key", "http.route"}, {"value", {{"stringValue", "/v1/orders"}}}}}},
            {"status", {{"code", 0}}}};
}

json request_of(std::vector<json> spans, const std::string& service = "ordo-query") {
    return {
        {"resourceSpans",
         {{{"resource",
            {{"attributes", {{{"key", "service.name"}, {"value", {{"stringValue", service}}}}}}}},
           {"scopeSpans", {{{"spans", spans}}}}}}}};
}

// The message of the refusal; a test failure when the request is accepted.
std::string refusal(const json& request) {
    try {
        auto spans = decode_otlp_traces(request);
        ADD_FAILURE() << "accepted, " << spans.size() << " spans";
    } catch (const platform::InvalidInput& e) {
        return e.what();
    }
    return {};
}

std::string text_of(const std::vector<std::pair<std::string, std::string>>& attributes,
                    const std::string& key) {
    for (const auto& [k, v] : attributes) {
        if (k == key) return v;
    }
    return "(absent)";
}

bool valid_utf8(const std::string& text) {
    // The strict serializer throws on invalid UTF-8.
    try {
        (void)json(text).dump();
        return true;
    } catch (const json::type_error&) {
        return false;
    }
}

TEST(OtlpDecode, ReadsBackWhatOrdosOwnExporterSends) {
    using platform::otlp::Span;
    using platform::otlp::SpanKind;
    const platform::Clock::time_point start{std::chrono::seconds{1'700'000'000}};
    Span server;
    server.context =
        *platform::TraceContext::parse(std::string("00-") + kTraceId + "-" + kSpanId + "-01");
    server.parent_span_id = platform::parse_span_id(kParentId);
    server.name = "POST /v1/orders";
    server.kind = SpanKind::server;
    server.start = start;
    server.end = start + std::chrono::microseconds{1500};
    server.attributes = {{"http.request.method", std::string("POST")},
                         {"http.response.status_code", std::int64_t{202}},
                         {"ratio", 0.5},
                         {"flag", true}};
    Span root = server;
    root.context.span_id = *platform::parse_span_id(kParentId);
    root.parent_span_id.reset();
    root.kind = SpanKind::producer;
    root.error = true;
    root.status_message = "boom";
    root.attributes.clear();

    // Through the wire's text, as the collector receives it.
    auto body = platform::otlp::encode({server, root}, "ordo-command").dump();
    auto spans = decode_otlp_traces(json::parse(body));

    ASSERT_EQ(spans.size(), 2u);
    const auto& s = spans[0];
    EXPECT_EQ(s.trace_id, kTraceId);
    EXPECT_EQ(s.span_id, kSpanId);
    EXPECT_EQ(s.parent_span_id, kParentId);
    EXPECT_EQ(s.service, "ordo-command");
    EXPECT_EQ(s.name, "POST /v1/orders");
    EXPECT_EQ(s.kind, "server");
    EXPECT_EQ(s.start_ns, 1'700'000'000'000'000'000);
    EXPECT_EQ(s.end_ns, 1'700'000'000'001'500'000);
    EXPECT_FALSE(s.error);
    EXPECT_EQ(s.attributes, (std::vector<std::pair<std::string, std::string>>{
                                {"http.request.method", "POST"},
                                {"http.response.status_code", "202"},
                                {"ratio", "0.5"},
                                {"flag", "true"}}));
    const auto& r = spans[1];
    EXPECT_EQ(r.span_id, kParentId);
    EXPECT_EQ(r.parent_span_id, "");
    EXPECT_EQ(r.kind, "producer");
    EXPECT_TRUE(r.error);
    EXPECT_EQ(r.status_message, "boom");
}

TEST(OtlpDecode, ReadsAnotherSdksShapeOfTheMapping) {
    // Enum names, int64 as strings and numbers, upper-case ids, the older list name, a second
    // resource without service.name, and fields left out at their defaults.
    auto request = json::parse(R"({
      "resourceSpans": [
        {
          "resource": {"attributes": [
            {"key": "service.name", "value": {"stringValue": "checkout"}},
            {"key": "host.name", "value": {"stringValue": "web-1"}}]},
          "instrumentationLibrarySpans": [{
            "instrumentationLibrary": {"name": "io.opentelemetry.okhttp"},
            "spans": [{
              "traceId": "0AF7651916CD43DD8448EB211C80319C",
              "spanId": "B7AD6B7169203331",
              "parentSpanId": "",
              "name": "HTTP GET",
              "kind": "SPAN_KIND_CLIENT",
              "startTimeUnixNano": 1700000000000000000,
              "endTimeUnixNano": "1700000000250000000",
              "status": {"code": "STATUS_CODE_ERROR", "message": "connection reset"},
              "attributes": [
                {"key": "http.status_code", "value": {"intValue": "503"}},
                {"key": "retries", "value": {"intValue": 2}},
                {"key": "ratio", "value": {"doubleValue": "NaN"}},
                {"key": "cached", "value": {"boolValue": false}},
                {"key": "tags", "value": {"arrayValue": {"values": [
                  {"stringValue": "a\"b"}, {"intValue": "7"},
                  {"kvlistValue": {"values": [{"key": "k", "value": {"boolValue": true}}]}}]}}},
                {"key": "empty", "value": {}}
              ]
            }]
          }]
        },
        {
          "scopeSpans": [{"spans": [{
            "traceId": "0af7651916cd43dd8448eb211c80319c",
            "spanId": "00f067aa0ba902b7",
            "parentSpanId": "b7ad6b7169203331",
            "startTimeUnixNano": "1700000000100000000",
            "endTimeUnixNano": "1700000000100000000",
            "status": {}
          }]}]
        }
      ]
    })");

    auto spans = decode_otlp_traces(request);

    ASSERT_EQ(spans.size(), 2u);
    const auto& client = spans[0];
    EXPECT_EQ(client.trace_id, kTraceId);
    EXPECT_EQ(client.span_id, kParentId);
    EXPECT_EQ(client.parent_span_id, "");
    EXPECT_EQ(client.service, "checkout");
    EXPECT_EQ(client.kind, "client");
    EXPECT_EQ(client.start_ns, 1'700'000'000'000'000'000);
    EXPECT_EQ(client.end_ns, 1'700'000'000'250'000'000);
    EXPECT_TRUE(client.error);
    EXPECT_EQ(client.status_message, "connection reset");
    EXPECT_EQ(text_of(client.attributes, "http.status_code"), "503");
    EXPECT_EQ(text_of(client.attributes, "retries"), "2");
    EXPECT_EQ(text_of(client.attributes, "ratio"), "NaN");
    EXPECT_EQ(text_of(client.attributes, "cached"), "false");
    EXPECT_EQ(text_of(client.attributes, "tags"), R"(["a\"b",7,{"k":true}])");
    EXPECT_EQ(text_of(client.attributes, "empty"), "");
    const auto& internal = spans[1];
    EXPECT_EQ(internal.service, "unknown");
    EXPECT_EQ(internal.name, "");
    EXPECT_EQ(internal.kind, "unspecified");
    EXPECT_EQ(internal.parent_span_id, kParentId);
    EXPECT_FALSE(internal.error);
    EXPECT_TRUE(internal.attributes.empty());
}

TEST(OtlpDecode, AnEmptyRequestHasNoSpans) {
    EXPECT_TRUE(decode_otlp_traces(json::object()).empty());
    EXPECT_TRUE(decode_otlp_traces({{"resourceSpans", json::array()}}).empty());
    EXPECT_TRUE(
        decode_otlp_traces(json::parse(R"({"resourceSpans": [{"scopeSpans": [{}]}]})")).empty());
}

TEST(OtlpDecode, RefusesTheWholeRequestNamingThePathOfTheFault) {
    struct Case {
        std::function<void(json&)> spoil;
        std::string message;
    };
    const std::string at = "resourceSpans[0].scopeSpans[1].spans[3].";
    const std::vector<Case> cases = {
        {[](json& s) { s["traceId"] = "0af7651916cd43dd"; },
         at + "traceId: expected 32 hex digits"},
        {[](json& s) { s["traceId"] = "0af7651916cd43dd8448eb211c80319g"; },
         at + "traceId: expected 32 hex digits"},
        {[](json& s) { s.erase("traceId"); }, at + "traceId: expected 32 hex digits"},
        {[](json& s) { s["traceId"] = std::string(32, '0'); },
         at + "traceId: an all-zero id is invalid"},
        {[](json& s) { s["spanId"] = "CgsMDQ4PEBE="; }, at + "spanId: expected 16 hex digits"},
        {[](json& s) { s["spanId"] = 42; }, at + "spanId: expected 16 hex digits"},
        {[](json& s) { s["parentSpanId"] = "0000000000000000"; },
         at + "parentSpanId: an all-zero id is invalid"},
        {[](json& s) { s["name"] = json::array(); }, at + "name: expected a string"},
        {[](json& s) { s["kind"] = 6; },
         at + "kind: expected 0 to 5 or SPAN_KIND_UNSPECIFIED to SPAN_KIND_CONSUMER"},
        {[](json& s) { s["kind"] = "server"; },
         at + "kind: expected 0 to 5 or SPAN_KIND_UNSPECIFIED to SPAN_KIND_CONSUMER"},
        {[](json& s) { s["startTimeUnixNano"] = -1; },
         at + "startTimeUnixNano: expected a time not before the epoch"},
        {[](json& s) { s["startTimeUnixNano"] = "17e17"; },
         at + "startTimeUnixNano: expected nanoseconds since the epoch as an integer"},
        {[](json& s) { s["endTimeUnixNano"] = "18446744073709551615"; },
         at + "endTimeUnixNano: expected nanoseconds since the epoch as an integer"},
        {[](json& s) { s["endTimeUnixNano"] = 1.7e18; },
         at + "endTimeUnixNano: expected nanoseconds since the epoch as an integer"},
        {[](json& s) { s["endTimeUnixNano"] = "1699999999999999999"; },
         at + "endTimeUnixNano: expected a time not before startTimeUnixNano"},
        {[](json& s) {
             s["status"] = {{"code", 3}};
         },
         at + "status.code: expected 0 to 2 or STATUS_CODE_UNSET to STATUS_CODE_ERROR"},
        {[](json& s) { s["status"] = "ERROR"; }, at + "status: expected an object"},
        {[](json& s) { s["attributes"] = json::object(); }, at + "attributes: expected an array"},
        {[](json& s) { s["attributes"].push_back("x"); }, at + "attributes[1]: expected an object"},
        {[](json& s) { s["attributes"][0]["key"] = 7; },
         at + "attributes[0].key: expected a string"},
        {[](json& s) {
             s["attributes"][0]["value"] = {{"intValue", "1.5"}};
         },
         at + "attributes[0].value.intValue: expected a 64-bit integer"},
        {[](json& s) {
             s["attributes"][0]["value"] = {{"stringValue", 42}};
         },
         at + "attributes[0].value.stringValue: expected a string"},
        {[](json& s) {
             s["attributes"][0]["value"] = {{"boolValue", "true"}};
         },
         at + "attributes[0].value.boolValue: expected true or false"},
        {[](json& s) {
             s["attributes"][0]["value"] = {{"doubleValue", "half"}};
         },
         at + "attributes[0].value.doubleValue: expected a number"},
        {[](json& s) {
             s["attributes"][0]["value"] = {
                 {"arrayValue", {{"values", {{{"intValue", "1"}}, {{"intValue", "x"}}}}}}};
         },
         at + "attributes[0].value.arrayValue.values[1].intValue: expected a 64-bit integer"},
        {[](json& s) { s = "a span"; },
         "resourceSpans[0].scopeSpans[1].spans[3]: expected an object"},
    };
    for (const auto& c : cases) {
        // Given a request whose fourth span of the second scope is spoiled, and good spans
        // before it,
        auto bad = span_json("00000000000000a4");
        c.spoil(bad);
        auto request = request_of({span_json("00000000000000a0")});
        request["resourceSpans"][0]["scopeSpans"].push_back(
            {{"spans",
              {span_json("00000000000000a1"), span_json("00000000000000a2"),
               span_json("00000000000000a3"), bad}}});
        // when it is decoded, then nothing comes of it but the refusal naming the fault.
        EXPECT_EQ(refusal(request), c.message);
    }
}

TEST(OtlpDecode, RefusesMalformedListsAndResources) {
    EXPECT_EQ(refusal(json::array()), "request: expected a JSON object");
    EXPECT_EQ(refusal(json::parse(R"({"resourceSpans": "none"})")),
              "resourceSpans: expected an array");
    EXPECT_EQ(refusal(json::parse(R"({"resourceSpans": [1]})")),
              "resourceSpans[0]: expected an object");
    EXPECT_EQ(refusal(json::parse(R"({"resourceSpans": [{"scopeSpans": [{"spans": 1}]}]})")),
              "resourceSpans[0].scopeSpans[0].spans: expected an array");
    auto request = request_of({span_json()});
    request["resourceSpans"][0]["resource"]["attributes"][0]["value"] = {{"intValue", true}};
    EXPECT_EQ(refusal(request),
              "resourceSpans[0].resource.attributes[0].value.intValue: expected a 64-bit integer");
    request = request_of({span_json()});
    request["resourceSpans"][0]["instrumentationLibrarySpans"] = {
        {{"spans", {span_json(), span_json("")}}}};
    EXPECT_EQ(refusal(request),
              "resourceSpans[0].instrumentationLibrarySpans[0].spans[1].spanId: expected 16 hex "
              "digits");
}

TEST(OtlpDecode, TakesAtMostTenThousandSpansInOneRequest) {
    auto spans = std::vector<json>(kMaxSpansPerRequest / 2, span_json());
    auto request = request_of(spans);
    request["resourceSpans"][0]["scopeSpans"].push_back({{"spans", spans}});
    EXPECT_EQ(decode_otlp_traces(request).size(), kMaxSpansPerRequest);

    request["resourceSpans"][0]["scopeSpans"][1]["spans"].push_back(span_json());
    EXPECT_EQ(refusal(request),
              "resourceSpans[0].scopeSpans[1].spans[5000]: more than 10000 "
              "spans in one request");
}

TEST(OtlpDecode, CutsLongTextsAtACharacterBoundaryAndKeepsTheFirstAttributes) {
    const std::string two_byte = "\xC3\xA9";  // é
    auto span = span_json();
    std::string long_name;
    for (int i = 0; i < 200; ++i) long_name += two_byte;  // 400 bytes
    span["name"] = long_name;
    span["status"] = {{"code", 2}, {"message", std::string(5000, 'm')}};
    span["attributes"] = json::array();
    span["attributes"].push_back(
        {{"key", std::string(300, 'k')}, {"value", {{"stringValue", std::string(2000, 'v')}}}});
    for (int i = 1; i < 40; ++i) {
        span["attributes"].push_back(
            {{"key", "a" + std::to_string(i)}, {"value", {{"intValue", std::to_string(i)}}}});
    }

    auto spans = decode_otlp_traces(request_of({span}, std::string(500, 's')));

    ASSERT_EQ(spans.size(), 1u);
    const auto& s = spans[0];
    const std::string ellipsis = "\xE2\x80\xA6";
    // 253 bytes before the ellipsis would split an é: the cut falls one byte earlier.
    EXPECT_EQ(s.name.size(), 252u + ellipsis.size());
    EXPECT_EQ(s.name, long_name.substr(0, 252) + ellipsis);
    EXPECT_TRUE(valid_utf8(s.name));
    EXPECT_EQ(s.service, std::string(125, 's') + ellipsis);
    EXPECT_EQ(s.status_message, std::string(1021, 'm') + ellipsis);
    ASSERT_EQ(s.attributes.size(), kMaxAttributesPerSpan);
    EXPECT_EQ(s.attributes[0].first, std::string(125, 'k') + ellipsis);
    EXPECT_EQ(s.attributes[0].second, std::string(1021, 'v') + ellipsis);
    EXPECT_EQ(s.attributes.back(), (std::pair<std::string, std::string>{"a31", "31"}));
}

TEST(OtlpDecode, RendersDeepAndLongListsWithinTheValueLimit) {
    json deep = {{"stringValue", "bottom"}};
    for (int i = 0; i < 50; ++i) deep = {{"arrayValue", {{"values", {deep}}}}};
    json wide = {{"arrayValue", {{"values", std::vector<json>(5000, {{"intValue", "123"}})}}}};
    auto span = span_json();
    span["attributes"] = {{{"key", "deep"}, {"value", deep}}, {{"key", "wide"}, {"value", wide}}};

    auto spans = decode_otlp_traces(request_of({span}));

    ASSERT_EQ(spans.size(), 1u);
    const auto& deep_text = spans[0].attributes[0].second;
    EXPECT_EQ(deep_text.rfind("[[[[[[[[\"", 0), 0u) << deep_text;
    EXPECT_EQ(deep_text.find("bottom"), std::string::npos);
    const auto& wide_text = spans[0].attributes[1].second;
    EXPECT_LE(wide_text.size(), kMaxAttributeValueBytes);
    EXPECT_EQ(wide_text.rfind("[123,123,", 0), 0u);
}

StoredSpan stored(const std::string& trace_id, const std::string& span_id,
                  std::int64_t start_ns = 100, const std::string& name = "work") {
    StoredSpan s;
    s.trace_id = trace_id;
    s.span_id = span_id;
    s.service = "ordo-query";
    s.name = name;
    s.kind = "internal";
    s.start_ns = start_ns;
    s.end_ns = start_ns + 10;
    return s;
}

// A trace id made of a number: "000…0001".
std::string trace_no(int n) {
    auto digits = std::to_string(n);
    return std::string(32 - digits.size(), '0') + digits;
}

std::string span_no(int n) {
    auto digits = std::to_string(n);
    return std::string(16 - digits.size(), '0') + digits;
}

std::vector<std::string> span_ids(const std::vector<StoredSpan>& spans) {
    std::vector<std::string> ids;
    for (const auto& s : spans) ids.push_back(s.span_id);
    return ids;
}

TEST(SpanStore, GivesATracesSpansByStartThenSpanId) {
    SpanStore store;
    store.add({stored(kTraceId, "00000000000000c3", 300), stored(kTraceId, "00000000000000b2", 100),
               stored(trace_no(9), "00000000000000d9", 50),
               stored(kTraceId, "00000000000000a1", 100)});

    EXPECT_EQ(
        span_ids(store.trace(kTraceId)),
        (std::vector<std::string>{"00000000000000a1", "00000000000000b2", "00000000000000c3"}));
    EXPECT_EQ(store.trace("0AF7651916CD43DD8448EB211C80319C").size(), 3u);
    EXPECT_TRUE(store.trace(trace_no(8)).empty());
    auto stats = store.stats();
    EXPECT_EQ(stats.spans, 4u);
    EXPECT_EQ(stats.traces, 2u);
}

TEST(SpanStore, EvictsWholeTracesInTheOrderTheyFirstArrived) {
    SpanStore store{5};
    store.add({stored(trace_no(1), span_no(1)), stored(trace_no(1), span_no(2))});
    store.add({stored(trace_no(2), span_no(1)), stored(trace_no(2), span_no(2))});
    store.add({stored(trace_no(3), span_no(1)), stored(trace_no(3), span_no(2))});
    // The sixth span evicted the first trace, both its spans.
    EXPECT_TRUE(store.trace(trace_no(1)).empty());
    EXPECT_EQ(store.stats().spans, 4u);

    // A trace that gets a span later keeps its place in line: trace 2 is still the oldest.
    store.add({stored(trace_no(2), span_no(3))});
    store.add({stored(trace_no(4), span_no(1))});

    EXPECT_TRUE(store.trace(trace_no(2)).empty());
    EXPECT_EQ(store.trace(trace_no(3)).size(), 2u);
    EXPECT_EQ(store.trace(trace_no(4)).size(), 1u);
    auto stats = store.stats();
    EXPECT_EQ(stats.spans, 3u);
    EXPECT_EQ(stats.traces, 2u);
    EXPECT_EQ(stats.evicted_traces, 2u);
    EXPECT_EQ(stats.dropped_spans, 0u);
}

TEST(SpanStore, NeverHoldsMoreThanItsBound) {
    SpanStore store{100, 30};
    for (int t = 1; t <= 50; ++t) {
        std::vector<StoredSpan> batch;
        for (int s = 1; s <= t % 7 + 1; ++s) batch.push_back(stored(trace_no(t), span_no(s)));
        store.add(std::move(batch));
        ASSERT_LE(store.stats().spans, 100u);
    }
    // The newest trace is always whole.
    EXPECT_EQ(store.trace(trace_no(50)).size(), 50u % 7 + 1);
}

// Large spans are bounded by their memory, not only their number.
TEST(SpanStore, NeverHoldsMoreThanItsByteBound) {
    constexpr std::size_t kBytes = 200'000;
    SpanStore store{1'000'000, 2'000, kBytes};
    for (int t = 1; t <= 40; ++t) {
        auto span = stored(trace_no(t), span_no(1));
        span.status_message = std::string(1000, 'x');
        for (int a = 0; a < 32; ++a)
            span.attributes.emplace_back("key" + std::to_string(a), std::string(1000, 'v'));
        store.add({span});
        ASSERT_LE(store.stats().bytes, kBytes);
    }
    EXPECT_GT(store.stats().evicted_traces, 0u);
    EXPECT_EQ(store.trace(trace_no(40)).size(), 1u);  // the newest is kept
    EXPECT_TRUE(store.trace(trace_no(1)).empty());
}

TEST(SpanStore, DropsAndCountsSpansBeyondATracesCap) {
    SpanStore store{100, 3};
    store.add({stored(kTraceId, span_no(1)), stored(kTraceId, span_no(2)),
               stored(kTraceId, span_no(3)), stored(kTraceId, span_no(4)),
               stored(trace_no(2), span_no(1))});
    store.add({stored(kTraceId, span_no(5))});

    EXPECT_EQ(span_ids(store.trace(kTraceId)),
              (std::vector<std::string>{span_no(1), span_no(2), span_no(3)}));
    auto stats = store.stats();
    EXPECT_EQ(stats.spans, 4u);
    EXPECT_EQ(stats.dropped_spans, 2u);
    EXPECT_EQ(stats.evicted_traces, 0u);
}

TEST(SpanStore, ASpanSentAgainReplacesTheEarlierOne) {
    SpanStore store{100, 2};
    store.add({stored(kTraceId, span_no(1), 100, "first try"), stored(kTraceId, span_no(2))});
    // The exporter retries the batch; a full trace still takes its own spans again.
    store.add({stored(kTraceId, span_no(1), 100, "retried"), stored(kTraceId, span_no(2))});

    auto spans = store.trace(kTraceId);
    ASSERT_EQ(spans.size(), 2u);
    EXPECT_EQ(spans[0].name, "retried");
    auto stats = store.stats();
    EXPECT_EQ(stats.spans, 2u);
    EXPECT_EQ(stats.dropped_spans, 0u);
}

TEST(SpanStore, ATraceNeverTakesMoreThanTheWholeStore) {
    SpanStore store{3, 2'000};
    store.add({stored(kTraceId, span_no(1)), stored(kTraceId, span_no(2)),
               stored(kTraceId, span_no(3)), stored(kTraceId, span_no(4))});

    EXPECT_EQ(store.trace(kTraceId).size(), 3u);
    EXPECT_EQ(store.stats().dropped_spans, 1u);
}

TEST(SpanStore, ConcurrentWritersAndReadersKeepTheBoundAndWholeBatches) {
    constexpr std::size_t kMax = 500;
    constexpr int kWriters = 3;
    constexpr int kTracesPerWriter = 2'000;
    constexpr int kSpansPerTrace = 7;
    SpanStore store{kMax, 50};
    std::atomic<bool> writing{true};
    std::atomic<int> broken{0};

    std::vector<std::thread> threads;
    for (int w = 0; w < kWriters; ++w) {
        threads.emplace_back([&, w] {
            for (int t = 0; t < kTracesPerWriter; ++t) {
                std::vector<StoredSpan> batch;
                for (int s = 1; s <= kSpansPerTrace; ++s) {
                    batch.push_back(stored(trace_no(w * kTracesPerWriter + t + 1), span_no(s)));
                }
                store.add(std::move(batch));
            }
        });
    }
    std::thread reader{[&] {
        while (writing) {
            auto stats = store.stats();
            if (stats.spans > kMax) ++broken;
            for (int id = 1; id <= kWriters * kTracesPerWriter; id += 37) {
                auto size = store.trace(trace_no(id)).size();
                if (size != 0 && size != kSpansPerTrace) ++broken;  // part of a batch
            }
        }
    }};
    for (auto& t : threads) t.join();
    writing = false;
    reader.join();

    EXPECT_EQ(broken.load(), 0);
    auto stats = store.stats();
    EXPECT_LE(stats.spans, kMax);
    EXPECT_EQ(stats.traces + stats.evicted_traces, std::size_t{kWriters * kTracesPerWriter});
    EXPECT_EQ(stats.dropped_spans, 0u);
    std::size_t held = 0;
    for (int id = 1; id <= kWriters * kTracesPerWriter; ++id)
        held += store.trace(trace_no(id)).size();
    EXPECT_EQ(held, stats.spans);
    EXPECT_EQ(stats.spans, stats.traces * kSpansPerTrace);
}

}  // namespace
}  // namespace ordo::query
