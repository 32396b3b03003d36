// The hop histograms' family and buckets, the age of a stored time, and quantiles read back
// from histogram buckets the way the benchmarks print them.
#include "platform/core/hops.hpp"

#include <gtest/gtest.h>

#include "platform/core/metrics.hpp"

namespace ordo::platform::metrics {
namespace {

using namespace std::chrono;

TEST(HopQuantile, InterpolatesInsideTheBucketLikeHistogramQuantile) {
    // 10 observations in (0, 1], 10 in (1, 2], none in (2, 4], none above.
    const std::vector<double> bounds{1, 2, 4};
    const std::vector<std::uint64_t> cumulative{10, 20, 20, 20};
    EXPECT_DOUBLE_EQ(*quantile(bounds, cumulative, 0.5), 1.0);
    EXPECT_DOUBLE_EQ(*quantile(bounds, cumulative, 0.25), 0.5);
    EXPECT_DOUBLE_EQ(*quantile(bounds, cumulative, 0.75), 1.5);
    EXPECT_DOUBLE_EQ(*quantile(bounds, cumulative, 1.0), 2.0);
}

TEST(HopQuantile, SkipsEmptyBucketsAndCapsAtTheHighestFiniteBound) {
    const std::vector<double> bounds{1, 2, 4};
    EXPECT_DOUBLE_EQ(*quantile(bounds, {0, 0, 4, 4}, 0.5), 3.0);
    // Half of them above every bound: the highest finite bound is all that is known.
    EXPECT_DOUBLE_EQ(*quantile(bounds, {1, 1, 1, 2}, 0.99), 4.0);
}

TEST(HopQuantile, NothingForAnEmptyOrMisshapenHistogram) {
    EXPECT_EQ(quantile({1, 2}, {0, 0, 0}, 0.5), std::nullopt);
    EXPECT_EQ(quantile({1, 2}, {1, 2}, 0.5), std::nullopt);
    EXPECT_EQ(quantile({1, 2}, {1, 2, 2}, 1.5), std::nullopt);
}

TEST(HopQuantile, ReadsBackARegistryHistogram) {
    Histogram h{hop_buckets()};
    for (int i = 0; i < 99; ++i) h.observe(0.004);
    h.observe(0.4);
    const auto p50 = quantile(h.bounds(), h.cumulative_counts(), 0.5);
    ASSERT_TRUE(p50);
    EXPECT_GT(*p50, 0.003);
    EXPECT_LE(*p50, 0.005);
    EXPECT_LE(*quantile(h.bounds(), h.cumulative_counts(), 0.99), 0.005);
    EXPECT_GT(*quantile(h.bounds(), h.cumulative_counts(), 0.999), 0.25);
}

TEST(Hops, OneFamilyLabelledByHopFromHalfAMillisecondToFiveSeconds) {
    const auto buckets = hop_buckets();
    ASSERT_FALSE(buckets.empty());
    EXPECT_DOUBLE_EQ(buckets.front(), 0.0005);
    EXPECT_DOUBLE_EQ(buckets.back(), 5.0);
    EXPECT_TRUE(std::is_sorted(buckets.begin(), buckets.end()));

    Registry registry;
    auto& relay = hop(registry, "relay_read", {{"shard", "0"}});
    EXPECT_EQ(&relay, &hop(registry, "relay_read", {{"shard", "0"}}));
    relay.observe(0.002);
    hop(registry, "projector_committed", {{"projection", "orders"}}).observe(0.01);
    const auto text = registry.render();
    EXPECT_NE(text.find("ordo_hop_seconds_bucket{hop=\"relay_read\",shard=\"0\",le=\"0.002\"} 1\n"),
              std::string::npos);
    EXPECT_NE(
        text.find("ordo_hop_seconds_count{hop=\"projector_committed\",projection=\"orders\"} 1"),
        std::string::npos);
}

TEST(Hops, AgeOfAStoredTimeIsNeverNegative) {
    const system_clock::time_point now{microseconds{1796378712123456}};
    EXPECT_DOUBLE_EQ(*seconds_since("2026-12-04T10:05:12.023456Z", now), 0.1);
    // The writer's clock ahead of ours.
    EXPECT_DOUBLE_EQ(*seconds_since("2026-12-04T10:05:13.000000Z", now), 0.0);
    EXPECT_EQ(seconds_since("yesterday", now), std::nullopt);
}

}  // namespace
}  // namespace ordo::platform::metrics
