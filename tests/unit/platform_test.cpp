// Platform basics: trace context, ids, metrics, the manual clock, failure classes, config,
// checkpoint tokens, stream ids and partitions.

#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>
#include <limits>
#include <stdexcept>
#include <string_view>

#include "eventstore/event_store.hpp"
#include "platform/core/clock.hpp"
#include "platform/core/comma_list.hpp"
#include "platform/core/config.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/nats.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::platform {
namespace {

TEST(TraceContext, ParsesAndFormatsAValidTraceparent) {
    auto ctx = TraceContext::parse("00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
    ASSERT_TRUE(ctx);
    EXPECT_EQ(ctx->trace_id_hex(), "0af7651916cd43dd8448eb211c80319c");
    EXPECT_EQ(ctx->span_id_hex(), "b7ad6b7169203331");
    EXPECT_TRUE(ctx->sampled());
    EXPECT_EQ(ctx->traceparent(), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01");
}

TEST(TraceContext, RejectsWhatTheSpecificationRejects) {
    for (const char* bad : {
             "",
             "00-00000000000000000000000000000000-b7ad6b7169203331-01",    // zero trace id
             "00-0af7651916cd43dd8448eb211c80319c-0000000000000000-01",    // zero span id
             "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",    // forbidden version
             "00-0AF7651916CD43DD8448EB211C80319C-b7ad6b7169203331-01",    // upper case
             "00-0af7651916cd43dd8448eb211c80319-b7ad6b7169203331-01",     // short trace id
             "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-x",  // v00 with extra
             "00_0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",    // bad separator
             "0g-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",    // bad version hex
         }) {
        EXPECT_FALSE(TraceContext::parse(bad)) << bad;
    }
}

TEST(TraceContext, AcceptsHigherVersionsWithMoreFields) {
    EXPECT_TRUE(
        TraceContext::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01-extra"));
    EXPECT_FALSE(
        TraceContext::parse("01-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01extra"));
}

TEST(TraceContext, ChildKeepsTheTraceAndGetsANewSpan) {
    IdGenerator ids{42};
    auto parent = ids.new_trace();
    auto child = ids.child_of(parent);
    EXPECT_EQ(child.trace_id, parent.trace_id);
    EXPECT_NE(child.span_id, parent.span_id);
}

TEST(CommaList, TrimsEachItemAndDropsEmptyOnes) {
    using List = std::vector<std::string>;
    EXPECT_EQ(comma_list("tls://a:1, tls://b:2,,tls://c:3 "),
              (List{"tls://a:1", "tls://b:2", "tls://c:3"}));
    EXPECT_EQ(comma_list("127.0.0.1:8080"), (List{"127.0.0.1:8080"}));
    EXPECT_TRUE(comma_list("").empty());
    EXPECT_TRUE(comma_list(" , ,").empty());
}

TEST(IdGenerator, MakesVersion4Uuids) {
    IdGenerator ids{7};
    auto id = ids.uuid_v4();
    ASSERT_EQ(id.size(), 36u);
    EXPECT_EQ(id[14], '4');
    EXPECT_NE(std::string{"89ab"}.find(id[19]), std::string::npos);
    EXPECT_NE(ids.uuid_v4(), id);
}

TEST(Metrics, RendersPrometheusText) {
    metrics::Registry registry;
    registry.counter("ordo_appends_total", "Appends", {{"outcome", "ok"}}).inc(3);
    registry.gauge("ordo_lag", "Lag").set(2.5);
    auto& h =
        registry.histogram("ordo_latency_seconds", "Latency", {{"route", "/v1/x"}}, {0.1, 1.0});
    h.observe(0.05);
    h.observe(0.5);
    h.observe(5);
    auto text = registry.render();
    EXPECT_NE(
        text.find("# TYPE ordo_appends_total counter\nordo_appends_total{outcome=\"ok\"} 3\n"),
        std::string::npos);
    EXPECT_NE(text.find("ordo_lag 2.5\n"), std::string::npos);
    EXPECT_NE(text.find("ordo_latency_seconds_bucket{route=\"/v1/x\",le=\"0.1\"} 1\n"),
              std::string::npos);
    EXPECT_NE(text.find("ordo_latency_seconds_bucket{route=\"/v1/x\",le=\"+Inf\"} 3\n"),
              std::string::npos);
    EXPECT_NE(text.find("ordo_latency_seconds_count{route=\"/v1/x\"} 3\n"), std::string::npos);
}

TEST(Metrics, EscapesLabelValues) {
    metrics::Registry registry;
    registry.counter("c_total", "c", {{"v", "a\"b\\c\nd"}}).inc();
    EXPECT_NE(registry.render().find("c_total{v=\"a\\\"b\\\\c\\nd\"} 1"), std::string::npos);
}

TEST(Metrics, SameSeriesIsReturnedForTheSameLabels) {
    metrics::Registry registry;
    auto& a = registry.counter("x_total", "x", {{"k", "1"}});
    auto& b = registry.counter("x_total", "x", {{"k", "1"}});
    EXPECT_EQ(&a, &b);
    EXPECT_THROW(registry.gauge("x_total", "x"), std::logic_error);
}

TEST(ManualClock, MovesOnlyWhenAdvanced) {
    ManualClock clock;
    auto t0 = clock.now();
    clock.advance(std::chrono::seconds(3));
    EXPECT_EQ(clock.now() - t0, std::chrono::seconds(3));
}

TEST(FailureClassification, TransientOnlyForWhatRetryingCanFix) {
    using pg::classify_sqlstate;
    for (const char* s : {"08006", "57P01", "57P03", "53300", "40001", "40P01", "55P03", "57014"}) {
        EXPECT_EQ(classify_sqlstate(s), FailureKind::transient) << s;
    }
    for (const char* s : {"23505", "42501", "22P02", "42P01", "23514", ""}) {
        EXPECT_EQ(classify_sqlstate(s), FailureKind::permanent) << s;
    }
}

TEST(Config, ReplacesTheDatabaseOfAUrl) {
    EXPECT_EQ(with_database("postgresql://u:p@h:1/ordo?connect_timeout=3", "t1"),
              "postgresql://u:p@h:1/t1?connect_timeout=3");
    EXPECT_EQ(with_database("postgresql://u:p@h:1", "t1"), "postgresql://u:p@h:1/t1");
}

TEST(Config, KeepsTheQueryOfAUrlWhoseDatabaseItReplaces) {
    EXPECT_EQ(with_database("postgresql://u:p@h:1/ordo?connect_timeout=3&sslmode=verify-full&"
                            "sslrootcert=/s/tls/ca.crt",
                            "t1"),
              "postgresql://u:p@h:1/t1?connect_timeout=3&sslmode=verify-full&"
              "sslrootcert=/s/tls/ca.crt");
}

TEST(Config, ReadsAnEnvFileWithSingleQuotedValues) {
    auto path = ::testing::TempDir() + "/ordo-env-file-test.env";
    {
        std::ofstream out{path};
        out << "# comment\nA=plain\nB='x?a=1&b=2'\nC='\nD=''\n";
    }
    auto values = read_env_file(path);
    std::remove(path.c_str());
    EXPECT_EQ(values.at("A"), "plain");
    EXPECT_EQ(values.at("B"), "x?a=1&b=2");
    EXPECT_EQ(values.at("C"), "'");  // one quote alone is a value, not a quoting
    EXPECT_EQ(values.at("D"), "");
}

TEST(NatsSettings, RedactsThePasswordOfEveryUrl) {
    EXPECT_EQ(nats::redacted("tls://ordo_relay:s3cret@127.0.0.1:4222"),
              "tls://ordo_relay:***@127.0.0.1:4222");
    EXPECT_EQ(nats::redacted("nats://a:b@h1:4222,nats://h2:4222,tls://c:d@[::1]:4222"),
              "nats://a:***@h1:4222,nats://h2:4222,tls://c:***@[::1]:4222");
    EXPECT_EQ(nats::redacted("nats://127.0.0.1:4222"), "nats://127.0.0.1:4222");
    EXPECT_EQ(nats::redacted("nats://token@h:4222"), "nats://token@h:4222");
}

TEST(Checkpoint, TokensRoundTripAndRejectGarbage) {
    eventstore::Checkpoint c{123456789, 42};
    EXPECT_EQ(eventstore::Checkpoint::parse_token(c.token()), c);
    for (const char* bad :
         {"", ".", "1.", ".1", "a.1", "1.-1", "1.2.3", "99999999999999999999999.1"}) {
        EXPECT_FALSE(eventstore::Checkpoint::parse_token(bad)) << bad;
    }
    EXPECT_LT((eventstore::Checkpoint{1, 9}), (eventstore::Checkpoint{2, 1}));
}

TEST(TransactionIds, AreDecimalDigitsThatFitSixtyFourBits) {
    EXPECT_EQ(eventstore::parse_transaction_id("0"), 0u);
    EXPECT_EQ(eventstore::parse_transaction_id("007"), 7u);
    EXPECT_EQ(eventstore::parse_transaction_id("18446744073709551615"),
              std::numeric_limits<std::uint64_t>::max());
    for (const char* bad : {"", " 1", "1 ", "+1", "-1", "-0", "1a", "a1", "0x10", "1.5",
                            "18446744073709551616", "99999999999999999999999"}) {
        EXPECT_FALSE(eventstore::parse_transaction_id(bad)) << bad;
    }
    // A digit past the end of the view is not read.
    EXPECT_EQ(eventstore::parse_transaction_id(std::string_view{"123"}.substr(0, 2)), 12u);

    EXPECT_EQ(eventstore::transaction_id_from_xid8("18446744073709551615"),
              std::numeric_limits<std::uint64_t>::max());
    EXPECT_THROW(eventstore::transaction_id_from_xid8(""), std::runtime_error);
    EXPECT_THROW(eventstore::transaction_id_from_xid8("18446744073709551616"), std::runtime_error);
    // The token carries the transaction id in the same form, with the same limits.
    EXPECT_EQ(eventstore::Checkpoint::parse_token("18446744073709551615.1"),
              (eventstore::Checkpoint{std::numeric_limits<std::uint64_t>::max(), 1}));
    EXPECT_FALSE(eventstore::Checkpoint::parse_token("18446744073709551616.1"));
    EXPECT_FALSE(eventstore::Checkpoint::parse_token("+1.1"));
}

TEST(ShardToken, NamesItsShardAndReadsAPlainTokenAsShardZeros) {
    const eventstore::ShardToken token{3, {812, 33}};
    EXPECT_EQ(token.token(), "3:812.33");
    EXPECT_EQ(eventstore::ShardToken::parse("3:812.33"), token);
    EXPECT_EQ(eventstore::ShardToken::parse("812.33"), (eventstore::ShardToken{0, {812, 33}}));
    for (const char* bad : {":812.33", "-1:812.33", "1000:812.33", "a:812.33", "1:", "1:812",
                            "1:2:812.33", " 1:812.33", "1 :812.33"}) {
        EXPECT_FALSE(eventstore::ShardToken::parse(bad)) << bad;
    }
}

TEST(StreamIds, CategoryIsThePartBeforeTheFirstDash) {
    EXPECT_TRUE(eventstore::is_valid_stream_id("inventory-sku-1"));
    EXPECT_EQ(eventstore::category_of("inventory-sku-1"), "inventory");
    EXPECT_EQ(eventstore::category_of("saga.fulfillment-o1"), "saga.fulfillment");
    for (const char* bad : {"", "-x", "x-", "nodash", "a-b c", "a-b/c"}) {
        EXPECT_FALSE(eventstore::is_valid_stream_id(bad)) << bad;
    }
}

}  // namespace
}  // namespace ordo::platform

namespace ordo::platform {
namespace {

TEST(Partition, IsFnv1a32OfTheStreamIdModP) {
    // Reference values of FNV-1a 32.
    EXPECT_EQ(stream_hash(""), 2166136261u);
    EXPECT_EQ(stream_hash("a"), 0xe40c292cu);
    EXPECT_EQ(stream_hash("foobar"), 0xbf9cf968u);
    EXPECT_EQ(partition_of("foobar", 16), static_cast<int>(0xbf9cf968u % 16));
    static_assert(partition_of("order-1", 1) == 0);
}

}  // namespace
}  // namespace ordo::platform
