// W3C Trace Context: traceparent parsing and child spans, tracestate's grammar and limits.

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "platform/core/trace.hpp"

// Cases of the W3C trace-context test suite (test/test.py of w3c/trace-context), applied to
// the parsers directly: what the suite expects a vendor to continue, restart or discard.
namespace ordo::platform {
namespace {

constexpr const char* kTraceId = "12345678901234567890123456789012";
constexpr const char* kSpanId = "1234567890123456";

std::string tp(const std::string& version, const std::string& trace, const std::string& span,
               const std::string& flags) {
    return version + "-" + trace + "-" + span + "-" + flags;
}

TEST(Traceparent, ContinuesAValidHeader) {
    auto ctx = TraceContext::parse(tp("00", kTraceId, kSpanId, "01"));
    ASSERT_TRUE(ctx);
    EXPECT_EQ(ctx->trace_id_hex(), kTraceId);
    EXPECT_EQ(ctx->span_id_hex(), kSpanId);
    EXPECT_TRUE(ctx->sampled());
    EXPECT_EQ(ctx->traceparent(), tp("00", kTraceId, kSpanId, "01"));
}

TEST(Traceparent, KeepsTheSampledFlagAndDropsUndefinedOnes) {
    auto unsampled = TraceContext::parse(tp("00", kTraceId, kSpanId, "00"));
    ASSERT_TRUE(unsampled);
    EXPECT_FALSE(unsampled->sampled());
    EXPECT_EQ(unsampled->traceparent(), tp("00", kTraceId, kSpanId, "00"));
    // test_traceparent_trace_flags_other_bits: undefined bits are not passed on.
    auto other = TraceContext::parse(tp("00", kTraceId, kSpanId, "fe"));
    ASSERT_TRUE(other);
    EXPECT_EQ(other->traceparent(), tp("00", kTraceId, kSpanId, "00"));
    auto both = TraceContext::parse(tp("00", kTraceId, kSpanId, "ff"));
    ASSERT_TRUE(both);
    EXPECT_EQ(both->traceparent(), tp("00", kTraceId, kSpanId, "01"));
}

TEST(Traceparent, RejectsVersionFf) {
    EXPECT_FALSE(TraceContext::parse(tp("ff", kTraceId, kSpanId, "01")));
}

TEST(Traceparent, RejectsIllegalVersions) {
    for (const char* version : {"0", "000", "0x", "0X", "0.", "-0", "Aa", "AA", ".0", "G0"}) {
        EXPECT_FALSE(TraceContext::parse(tp(version, kTraceId, kSpanId, "01"))) << version;
    }
}

TEST(Traceparent, ReadsHigherVersionsByTheVersion00Rules) {
    // test_traceparent_version_0x01, 0xcc: extra fields after "-" are ignored.
    auto future = TraceContext::parse(tp("01", kTraceId, kSpanId, "01") + "-what-the-future-holds");
    ASSERT_TRUE(future);
    EXPECT_EQ(future->trace_id_hex(), kTraceId);
    EXPECT_EQ(future->traceparent(), tp("00", kTraceId, kSpanId, "01"));  // sent as 00
    EXPECT_TRUE(TraceContext::parse(tp("cc", kTraceId, kSpanId, "01")));
    EXPECT_TRUE(TraceContext::parse(tp("fe", kTraceId, kSpanId, "01") + "-x"));
    // Anything but "-" after the flags is not a field separator.
    EXPECT_FALSE(TraceContext::parse(tp("01", kTraceId, kSpanId, "01") + ".what-the-future"));
    EXPECT_FALSE(TraceContext::parse(tp("cc", kTraceId, kSpanId, "01") + "x"));
    // Version 00 has exactly four fields.
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, kSpanId, "01") + "-extra"));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, kSpanId, "01") + "-"));
}

TEST(Traceparent, RejectsAllZeroIds) {
    EXPECT_FALSE(TraceContext::parse(tp("00", std::string(32, '0'), kSpanId, "01")));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, std::string(16, '0'), "01")));
}

TEST(Traceparent, RejectsUpperCaseHex) {
    EXPECT_FALSE(TraceContext::parse(tp("00", "ABCDEF78901234567890123456789012", kSpanId, "01")));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, "ABCDEF7890123456", "01")));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, kSpanId, "0A")));
}

TEST(Traceparent, RejectsIllegalCharactersInEveryField) {
    for (const char* trace :
         {"12345678901234567890123456789.12", "12345678901234567890123456789-12",
          "1234567890123456789012345678901g", " 2345678901234567890123456789012"}) {
        EXPECT_FALSE(TraceContext::parse(tp("00", trace, kSpanId, "01"))) << trace;
    }
    for (const char* span :
         {"123456789012345.", "12345678901234-6", "123456789012345z", "\t234567890123456"}) {
        EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, span, "01"))) << span;
    }
    for (const char* flags : {"0.", "0x", "-0", ".0", "gg", "  "}) {
        EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, kSpanId, flags))) << flags;
    }
}

TEST(Traceparent, RejectsBadLengthsAndSeparators) {
    EXPECT_FALSE(TraceContext::parse(""));
    EXPECT_FALSE(TraceContext::parse(tp("00", std::string(kTraceId) + "3", kSpanId, "01")));
    EXPECT_FALSE(TraceContext::parse(tp("00", std::string(kTraceId).substr(1), kSpanId, "01")));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, std::string(kSpanId) + "7", "01")));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, std::string(kSpanId).substr(1), "01")));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, kSpanId, "1")));
    EXPECT_FALSE(TraceContext::parse(tp("00", kTraceId, kSpanId, "011")));
    EXPECT_FALSE(TraceContext::parse(std::string("00_") + kTraceId + "-" + kSpanId + "-01"));
    EXPECT_FALSE(TraceContext::parse(std::string("00-") + kTraceId + "_" + kSpanId + "-01"));
    EXPECT_FALSE(TraceContext::parse(std::string("00-") + kTraceId + "-" + kSpanId + "_01"));
    // Whitespace around the value is the HTTP layer's to strip, not part of the value.
    EXPECT_FALSE(TraceContext::parse(" " + tp("00", kTraceId, kSpanId, "01")));
}

TEST(Traceparent, HexIdHelpersRefuseWhatTraceparentRefuses) {
    EXPECT_TRUE(parse_trace_id(kTraceId));
    EXPECT_FALSE(parse_trace_id(std::string(32, '0')));
    EXPECT_FALSE(parse_trace_id("ABCDEF78901234567890123456789012"));
    EXPECT_TRUE(parse_span_id(kSpanId));
    EXPECT_FALSE(parse_span_id("123"));
    EXPECT_EQ(to_hex(*parse_span_id(kSpanId)), kSpanId);
}

TEST(Traceparent, ChildSpansKeepTraceFlagsAndTracestate) {
    auto parent = TraceContext::parse(tp("00", kTraceId, kSpanId, "00"));
    ASSERT_TRUE(parent);
    parent->tracestate = "foo=1";
    IdGenerator ids{42};
    auto child = ids.child_of(*parent);
    EXPECT_EQ(child.trace_id, parent->trace_id);
    EXPECT_NE(child.span_id, parent->span_id);
    EXPECT_EQ(child.flags, parent->flags);
    EXPECT_EQ(child.tracestate, "foo=1");
}

TEST(Tracestate, ParsesMembersInOrderAndFormatsThemBack) {
    auto state = TraceState::parse("foo=1,bar=2");
    ASSERT_TRUE(state);
    ASSERT_EQ(state->members().size(), 2u);
    EXPECT_EQ(state->members()[0].first, "foo");
    EXPECT_EQ(state->get("bar"), "2");
    EXPECT_EQ(state->format(), "foo=1,bar=2");
}

TEST(Tracestate, AllowsOptionalWhitespaceAndEmptyMembers) {
    auto state = TraceState::parse(" foo=1 ,\tbar=2\t, ,,baz=3 ");
    ASSERT_TRUE(state);
    EXPECT_EQ(state->format(), "foo=1,bar=2,baz=3");
    auto empty = TraceState::parse("");
    ASSERT_TRUE(empty);
    EXPECT_TRUE(empty->empty());
    EXPECT_EQ(empty->format(), "");
}

TEST(Tracestate, CombinesSeveralHeaderLines) {
    // test_tracestate_multiple_headers_different_keys
    auto state =
        TraceState::parse(std::vector<std::string_view>{"foo=1,bar=2", "rojo=1,congo=2", "baz=3"});
    ASSERT_TRUE(state);
    EXPECT_EQ(state->format(), "foo=1,bar=2,rojo=1,congo=2,baz=3");
    // test_tracestate_empty_header: an empty line among others does no harm.
    auto with_empty = TraceState::parse(std::vector<std::string_view>{"foo=1", "", "bar=2"});
    ASSERT_TRUE(with_empty);
    EXPECT_EQ(with_empty->format(), "foo=1,bar=2");
}

TEST(Tracestate, DiscardsAHeaderWithDuplicatedKeys) {
    EXPECT_FALSE(TraceState::parse("foo=1,foo=1"));
    EXPECT_FALSE(TraceState::parse("foo=1,foo=2"));
    EXPECT_FALSE(TraceState::parse(std::vector<std::string_view>{"foo=1", "foo=1"}));
}

TEST(Tracestate, AcceptsThirtyTwoMembersAndDiscardsThirtyThree) {
    std::string list;
    for (int i = 0; i < 32; ++i)
        list += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
    auto full = TraceState::parse(list);
    ASSERT_TRUE(full);
    EXPECT_EQ(full->members().size(), 32u);
    EXPECT_FALSE(TraceState::parse(list + ",k32=v"));
}

TEST(Tracestate, KeysFollowTheGrammar) {
    for (const char* good : {"foo", "f", "foo_bar", "foo-bar", "foo*bar", "foo/bar", "f00",
                             "0@vendor", "tenant@vendor", "t-1_*/@v2-_*/", "a@b"}) {
        EXPECT_TRUE(TraceState::parse(std::string(good) + "=1")) << good;
    }
    for (const char* bad : {"Foo", "FOO", "0foo", "_foo", "-foo", "foo.bar", "foo!", "foo@",
                            "@vendor", "foo@0vendor", "foo@Vendor", "foo@bar@baz", "f oo", "="}) {
        EXPECT_FALSE(TraceState::parse(std::string(bad) + "=1")) << bad;
    }
    EXPECT_TRUE(TraceState::parse(std::string(256, 'z') + "=1"));
    EXPECT_FALSE(TraceState::parse(std::string(257, 'z') + "=1"));
    EXPECT_TRUE(TraceState::parse(std::string(241, 't') + "@" + std::string(14, 's') + "=1"));
    EXPECT_FALSE(TraceState::parse(std::string(242, 't') + "@" + std::string(14, 's') + "=1"));
    EXPECT_FALSE(TraceState::parse(std::string(241, 't') + "@" + std::string(15, 's') + "=1"));
}

TEST(Tracestate, ValuesFollowTheGrammar) {
    for (const char* good : {"1", "a b", "!\"#$%&'()*+-./:;<>?@[\\]^_`{|}~", " x"}) {
        auto state = TraceState::parse(std::string("foo=") + good);
        EXPECT_TRUE(state) << good;
    }
    for (const char* bad : {"foo=", "foo", "foo=a=b", "foo=x\x7f", "foo=\x01", "foo=\xc3\xa9"}) {
        EXPECT_FALSE(TraceState::parse(bad)) << bad;
    }
    // A value may not end in a space; trailing OWS of a member is trimmed first.
    EXPECT_FALSE(TraceState::valid_value("x "));
    EXPECT_TRUE(TraceState::parse("foo=x "));
    EXPECT_TRUE(TraceState::parse("foo=" + std::string(256, 'v')));
    EXPECT_FALSE(TraceState::parse("foo=" + std::string(257, 'v')));
}

TEST(Tracestate, AnUpdatedMemberMovesToTheFront) {
    auto state = TraceState::parse("foo=1,bar=2,baz=3");
    ASSERT_TRUE(state);
    EXPECT_TRUE(state->put("baz", "4"));
    EXPECT_EQ(state->format(), "baz=4,foo=1,bar=2");
    EXPECT_TRUE(state->put("new", "x"));
    EXPECT_EQ(state->format(), "new=x,baz=4,foo=1,bar=2");
    EXPECT_FALSE(state->put("Bad", "x"));
    EXPECT_FALSE(state->put("ok", "a,b"));
    EXPECT_EQ(state->format(), "new=x,baz=4,foo=1,bar=2");
    EXPECT_TRUE(state->erase("foo"));
    EXPECT_FALSE(state->erase("foo"));
    EXPECT_EQ(state->format(), "new=x,baz=4,bar=2");
}

TEST(Tracestate, AFullListDropsItsLastMemberForANewOne) {
    std::string list;
    for (int i = 0; i < 32; ++i)
        list += (i ? "," : "") + std::string("k") + std::to_string(i) + "=v";
    auto state = TraceState::parse(list);
    ASSERT_TRUE(state);
    EXPECT_TRUE(state->put("ordo", "1"));
    EXPECT_EQ(state->members().size(), 32u);
    EXPECT_EQ(state->members().front().first, "ordo");
    EXPECT_FALSE(state->get("k31"));
    EXPECT_TRUE(state->get("k30"));
}

}  // namespace
}  // namespace ordo::platform
