// Requests parked for their consistency token: which wake, when, and how many may wait.

#include <gtest/gtest.h>

#include <algorithm>

#include "query/parked_waits.hpp"

namespace ordo::query {
namespace {

using eventstore::Checkpoint;
using namespace std::chrono_literals;
using Clock = ParkedWaits::Clock;

const Clock::time_point kT0{};

bool contains(const std::vector<ParkedWaits::Over>& over, ParkedWaits::Id id, bool passed) {
    return std::any_of(over.begin(), over.end(),
                       [&](const auto& o) { return o.id == id && o.passed == passed; });
}

TEST(Progress, APartitionWithoutProgressHasNotPassed) {
    Progress progress{2};
    EXPECT_FALSE(progress.passed({"orders", 0}, Checkpoint{1, 1}));
    progress.set("orders", 0, Checkpoint{5, 10});
    EXPECT_TRUE(progress.passed({"orders", 0}, Checkpoint{5, 10}));
    EXPECT_FALSE(progress.passed({"orders", 0}, Checkpoint{5, 11}));
    EXPECT_FALSE(progress.passed({"orders", 1}, Checkpoint{1, 1}));
    EXPECT_FALSE(progress.passed({"accounts", 0}, Checkpoint{1, 1}));
}

TEST(Progress, ReadsOfEveryPartitionNeedEveryPartitionPast) {
    Progress progress{3};
    progress.set("traces", 0, Checkpoint{9, 90});
    progress.set("traces", 1, Checkpoint{9, 90});
    EXPECT_FALSE(progress.passed({"traces", std::nullopt}, Checkpoint{2, 20}));
    progress.set("traces", 2, Checkpoint{2, 19});
    EXPECT_FALSE(progress.passed({"traces", std::nullopt}, Checkpoint{2, 20}));
    progress.set("traces", 2, Checkpoint{3, 25});
    EXPECT_TRUE(progress.passed({"traces", std::nullopt}, Checkpoint{2, 20}));
}

// Over a sharded store (partitions 0 and 2 on shard 0, 1 and 3 on shard 1), a token waits
// only for the partitions whose checkpoints are in its shard's commit order: the others
// cannot hold its write. The checkpoint says which shard it is in, so a partition that moved
// (2, here to shard 1) is waited for by the tokens of its new shard, not its old one's.
TEST(Progress, AShardsTokenWaitsOnlyForThePartitionsWhoseCheckpointsAreInItsShard) {
    Progress progress{4};
    progress.set("orders", 0, Checkpoint{1, 1}, 0);
    progress.set("orders", 1, Checkpoint{7, 70}, 1);
    progress.set("orders", 2, Checkpoint{3, 30}, 1);
    EXPECT_FALSE(progress.passed({"orders", std::nullopt}, Checkpoint{7, 70}, 1))
        << "partition 3 has no progress";
    progress.set("orders", 3, Checkpoint{8, 1}, 1);
    EXPECT_FALSE(progress.passed({"orders", std::nullopt}, Checkpoint{7, 70}, 1))
        << "partition 2 is shard 1's now, and behind";
    progress.set("orders", 2, Checkpoint{9, 2}, 1);
    EXPECT_TRUE(progress.passed({"orders", std::nullopt}, Checkpoint{7, 70}, 1))
        << "partition 0 is another shard's";

    EXPECT_TRUE(progress.passed({"orders", 0}, Checkpoint{50, 500}, 1)) << "nothing to wait for";
    EXPECT_FALSE(progress.passed({"orders", 0}, Checkpoint{50, 500}, 0));
    EXPECT_TRUE(progress.passed({"orders", 2}, Checkpoint{50, 500}, 0)) << "moved away from 0";
    EXPECT_FALSE(progress.passed({"orders", 2}, Checkpoint{50, 500}, 1));
    // A checkpoint that names no shard (a store that is not sharded) is every token's.
    progress.set("accounts", 0, Checkpoint{5, 5});
    EXPECT_FALSE(progress.passed({"accounts", 0}, Checkpoint{6, 6}, 3));
    EXPECT_TRUE(progress.passed({"accounts", 0}, Checkpoint{5, 5}, 3));
}

TEST(ParkedWaits, AShardsWaitWakesOnlyForItsShardsCheckpoints) {
    ParkedWaits waits{4};
    ASSERT_TRUE(waits.park(1, {"orders", 0}, Checkpoint{7, 70}, kT0 + 2s, 1));
    ASSERT_TRUE(waits.park(2, {"orders", 0}, Checkpoint{7, 70}, kT0 + 2s, 0));
    Progress progress{1};
    progress.set("orders", 0, Checkpoint{2, 2}, 0);
    auto over = waits.settle(progress, kT0 + 10ms);
    ASSERT_EQ(over.size(), 1U);
    EXPECT_TRUE(contains(over, 1, true)) << "shard 1's token: partition 0 is shard 0's";
    progress.set("orders", 0, Checkpoint{7, 70}, 0);
    EXPECT_TRUE(contains(waits.settle(progress, kT0 + 20ms), 2, true));
}

TEST(ParkedWaits, AWaitWakesWhenItsPartitionPassesItsToken) {
    ParkedWaits waits{4};
    ASSERT_TRUE(waits.park(1, {"orders", 0}, Checkpoint{7, 70}, kT0 + 2s));
    ASSERT_TRUE(waits.park(2, {"orders", 1}, Checkpoint{7, 70}, kT0 + 2s));
    Progress progress{2};
    progress.set("orders", 0, Checkpoint{6, 60});
    EXPECT_TRUE(waits.settle(progress, kT0 + 10ms).empty());
    progress.set("orders", 0, Checkpoint{8, 71});
    auto over = waits.settle(progress, kT0 + 20ms);
    ASSERT_EQ(over.size(), 1U);
    EXPECT_TRUE(contains(over, 1, true));
    EXPECT_EQ(waits.size(), 1U);  // the other partition's wait stays parked
}

TEST(ParkedWaits, AWaitEndsUnpassedAtItsDeadline) {
    ParkedWaits waits{4};
    ASSERT_TRUE(waits.park(1, {"orders", 0}, Checkpoint{7, 70}, kT0 + 1s));
    ASSERT_TRUE(waits.park(2, {"orders", 0}, Checkpoint{7, 70}, kT0 + 3s));
    Progress progress{1};
    EXPECT_EQ(waits.next_deadline(), kT0 + 1s);
    EXPECT_TRUE(waits.settle(progress, kT0 + 999ms).empty());
    auto over = waits.settle(progress, kT0 + 1s);
    ASSERT_EQ(over.size(), 1U);
    EXPECT_TRUE(contains(over, 1, false));
    EXPECT_EQ(waits.next_deadline(), kT0 + 3s);
}

TEST(ParkedWaits, PassedWinsOverADeadlineReachedAtTheSameSettle) {
    ParkedWaits waits{1};
    ASSERT_TRUE(waits.park(1, {"orders", 0}, Checkpoint{7, 70}, kT0 + 1s));
    Progress progress{1};
    progress.set("orders", 0, Checkpoint{7, 70});
    auto over = waits.settle(progress, kT0 + 5s);
    ASSERT_EQ(over.size(), 1U);
    EXPECT_TRUE(contains(over, 1, true));
}

TEST(ParkedWaits, RefusesBeyondItsCapacityAndAcceptsAgainOnceOneEnds) {
    ParkedWaits waits{2};
    EXPECT_TRUE(waits.park(1, {"orders", 0}, Checkpoint{1, 1}, kT0 + 1s));
    EXPECT_TRUE(waits.park(2, {"orders", 0}, Checkpoint{1, 2}, kT0 + 1s));
    EXPECT_FALSE(waits.park(3, {"orders", 0}, Checkpoint{1, 3}, kT0 + 1s));
    EXPECT_FALSE(waits.park(2, {"orders", 0}, Checkpoint{1, 3}, kT0 + 1s));  // id in use
    Progress progress{1};
    progress.set("orders", 0, Checkpoint{1, 1});
    EXPECT_EQ(waits.settle(progress, kT0).size(), 1U);
    EXPECT_TRUE(waits.park(3, {"orders", 0}, Checkpoint{1, 3}, kT0 + 1s));
}

TEST(ParkedWaits, DrainEndsEveryWaitUnpassed) {
    ParkedWaits waits{3};
    ASSERT_TRUE(waits.park(1, {"orders", 0}, Checkpoint{1, 1}, kT0 + 1s));
    ASSERT_TRUE(waits.park(2, {"accounts", std::nullopt}, Checkpoint{1, 1}, kT0 + 1s));
    auto over = waits.drain();
    EXPECT_EQ(over.size(), 2U);
    EXPECT_TRUE(contains(over, 1, false));
    EXPECT_TRUE(contains(over, 2, false));
    EXPECT_TRUE(waits.empty());
    EXPECT_FALSE(waits.next_deadline().has_value());
}

}  // namespace
}  // namespace ordo::query
