// Event metadata and the trace context: one mapping both ways, flags and tracestate kept, and
// the stored shape of ordinary events unchanged.
#include <gtest/gtest.h>

#include "eventstore/events.hpp"
#include "eventstore/wire.hpp"

namespace ordo::eventstore {
namespace {

platform::TraceContext unsampled_with_state() {
    auto trace =
        platform::TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00");
    EXPECT_TRUE(trace);
    trace->tracestate = "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7";
    return *trace;
}

TEST(EventMetadata, ATraceGoesIntoMetadataAndComesBackWhole) {
    const auto trace = unsampled_with_state();
    Metadata m;
    set_trace(m, trace);
    auto stored = Metadata::from_json(nlohmann::json::parse(m.to_json().dump()));
    auto back = trace_of(stored);
    ASSERT_TRUE(back);
    EXPECT_EQ(back->traceparent(), trace.traceparent());
    EXPECT_FALSE(back->sampled());
    EXPECT_EQ(back->tracestate, trace.tracestate);
    EXPECT_EQ(traceparent_of(stored), trace.traceparent());
}

TEST(EventMetadata, OrdinaryEventsKeepTheShapeTheyAlwaysHad) {
    auto trace =
        platform::TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    Metadata m{"", "", "c", "d", "e", "f"};
    set_trace(m, *trace);
    EXPECT_EQ(m.to_json(), (nlohmann::json{{"trace_id", "0af7651916cd43dd8448eb211c80319c"},
                                           {"span_id", "b7ad6b7169203331"},
                                           {"correlation_id", "c"},
                                           {"causation_id", "d"},
                                           {"command_id", "e"},
                                           {"actor", "f"}}));
    // Metadata written before flags were kept reads as sampled, as it was sent.
    auto old = Metadata::from_json(m.to_json());
    EXPECT_EQ(old.trace_flags, "01");
    EXPECT_EQ(trace_of(old)->traceparent(), trace->traceparent());
}

TEST(EventMetadata, NoValidTraceIsNone) {
    Metadata none;
    EXPECT_FALSE(trace_of(none));
    Metadata no_span{"0af7651916cd43dd8448eb211c80319c", "", "", "", "", ""};
    EXPECT_FALSE(trace_of(no_span));
    Metadata zero_trace{std::string(32, '0'), "b7ad6b7169203331", "", "", "", ""};
    EXPECT_FALSE(trace_of(zero_trace));
    Metadata bad_flags{"0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "", "", "", "", "x"};
    EXPECT_FALSE(trace_of(bad_flags));
    // A stored tracestate that no longer parses is dropped; the trace is kept.
    Metadata bad_state{
        "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331", "", "", "", "", "01", "not a list"};
    auto kept = trace_of(bad_state);
    ASSERT_TRUE(kept);
    EXPECT_TRUE(kept->tracestate.empty());
}

}  // namespace
}  // namespace ordo::eventstore
