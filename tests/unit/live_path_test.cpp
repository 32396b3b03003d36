#include <gtest/gtest.h>

#include <string>

#include "platform/partition.hpp"
#include "projections/live_path.hpp"

namespace ordo::projections {
namespace {

constexpr int kPartitions = 4;

// A stream of the given partition.
std::string stream_in(int partition, int n = 0) {
    for (int i = 0;; ++i) {
        auto s = "inventory-sku-" + std::to_string(i);
        if (platform::partition_of(s, kPartitions) == partition && n-- == 0) return s;
    }
}

// The partition's chain as the relay sends it: event i at position i, after event i - 1.
LiveEvent live(std::int64_t position, int partition = 1) {
    LiveEvent e;
    e.key = {100, position};
    e.previous = position == 1 ? Checkpoint{} : Checkpoint{100, position - 1};
    e.event.position = position;
    e.event.transaction_id = 100;
    e.event.stream_id = stream_in(partition);
    return e;
}

std::vector<std::int64_t> positions(const LiveRun& run) {
    std::vector<std::int64_t> out;
    for (const auto& e : run.events) out.push_back(e.position);
    return out;
}

TEST(LivePath, ContinuesTheCheckpointWithoutAGap) {
    std::deque<LiveEvent> buffered{live(1), live(2), live(3), live(4)};
    auto run = continuing_run(buffered, {100, 2}, 1, kPartitions, 100);
    EXPECT_EQ(positions(run), (std::vector<std::int64_t>{3, 4}));
    EXPECT_TRUE(run.rest_empty);
    run = continuing_run(buffered, {}, 1, kPartitions, 3);
    EXPECT_EQ(positions(run), (std::vector<std::int64_t>{1, 2, 3}));
    EXPECT_FALSE(run.rest_empty);
}

TEST(LivePath, StopsAtAGapForTheStoreToFill) {
    std::deque<LiveEvent> buffered{live(1), live(2), live(4), live(5)};
    auto run = continuing_run(buffered, {}, 1, kPartitions, 100);
    EXPECT_EQ(positions(run), (std::vector<std::int64_t>{1, 2}));
    EXPECT_FALSE(run.rest_empty);
    // Once the store has filled it, the rest continues.
    EXPECT_EQ(positions(continuing_run(buffered, {100, 3}, 1, kPartitions, 100)),
              (std::vector<std::int64_t>{4, 5}));
    // Nothing continues a checkpoint the buffer does not reach.
    EXPECT_TRUE(continuing_run({live(7)}, {100, 5}, 1, kPartitions, 100).events.empty());
}

// A relay that lost its checkpoint publishes a batch again; past JetStream's duplicate
// window the copies arrive as new messages, behind the originals in the same buffer.
TEST(LivePath, CopiesOfEventsInTheRunArePassedOverNotAppliedTwice) {
    std::deque<LiveEvent> buffered{live(1), live(2), live(3), live(1), live(2), live(3), live(4)};
    auto run = continuing_run(buffered, {}, 1, kPartitions, 100);
    EXPECT_EQ(positions(run), (std::vector<std::int64_t>{1, 2, 3, 4}));
    EXPECT_TRUE(run.rest_empty);
}

// A relay running with another partition count puts other streams on this subject: the
// chain cannot be trusted, so the store decides.
TEST(LivePath, AnEventOfAnotherPartitionStopsTheRun) {
    std::deque<LiveEvent> buffered{live(1), live(2, 3), live(3)};
    auto run = continuing_run(buffered, {}, 1, kPartitions, 100);
    EXPECT_EQ(positions(run), (std::vector<std::int64_t>{1}));
    EXPECT_FALSE(run.rest_empty);
}

}  // namespace
}  // namespace ordo::projections
