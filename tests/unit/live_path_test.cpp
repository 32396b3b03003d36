// The live path: runs that continue a checkpoint, gaps, copies, other partitions; footprints; the
// bounded buffer.

#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "platform/core/partition.hpp"
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

// An order of `lines` lines, as OrderPlaced carries it.
nlohmann::json order_payload(int lines) {
    nlohmann::json payload{{"order_id", "order-00000000-0000-0000-0000-000000000001"},
                           {"customer_id", "customer-1"},
                           {"account_id", "account-1"},
                           {"total", 100 * lines},
                           {"lines", nlohmann::json::array()}};
    for (int i = 0; i < lines; ++i) {
        payload["lines"].push_back(
            {{"sku", "sku-" + std::to_string(i)}, {"quantity", 1}, {"unit_price", 100}});
    }
    return payload;
}

LiveEvent big(std::int64_t position, int lines = 100) {
    auto e = live(position);
    e.event.payload = order_payload(lines);
    return e;
}

TEST(LiveFootprint, CountsTheDecodedPayloadNotJustTheEvent) {
    const auto small = footprint(live(1));
    const auto order = footprint(big(1));
    EXPECT_GE(small, sizeof(LiveEvent));
    // A 100-line order is some 5 KiB on the wire and several times that decoded.
    EXPECT_GT(order, small + 100 * 3 * sizeof(nlohmann::json));
    EXPECT_GT(order, nlohmann::json(order_payload(100)).dump().size());
    EXPECT_GT(footprint(big(1, 100)), footprint(big(1, 10)));
}

TEST(LiveBuffer, RefusesWhatWouldPassTheBoundAndCountsBytes) {
    const auto one = footprint(big(1));
    LiveBuffer buffer{3 * one};
    EXPECT_TRUE(buffer.push(big(1)));
    EXPECT_TRUE(buffer.push(big(2)));
    EXPECT_TRUE(buffer.push(big(3)));
    EXPECT_EQ(buffer.bytes(), 3 * one);
    EXPECT_FALSE(buffer.push(big(4))) << "full: the newest is refused, no older one evicted";
    EXPECT_EQ(buffer.size(), 3u);
    EXPECT_EQ(buffer.bytes(), 3 * one);
    // An event larger than the whole bound is never buffered: the store carries it.
    LiveBuffer tiny{one - 1};
    EXPECT_FALSE(tiny.push(big(1)));
    EXPECT_EQ(tiny.bytes(), 0u);
}

// A partition that moved to another shard continues in that shard's commit order: events a
// relay of another shard published (before the move, or late) are not continued from, even
// when their keys would fit, and trimming for the new shard drops them.
TEST(LivePath, OnlyTheCheckpointsShardsEventsAreContinuedFrom) {
    auto of_shard = [](LiveEvent e, int shard) {
        e.shard = shard;
        return e;
    };
    std::deque<LiveEvent> buffered{of_shard(live(3), 0), of_shard(live(4), 0),
                                   of_shard(live(5), 1)};
    auto run = continuing_run(buffered, {100, 2}, 1, kPartitions, 100, 1);
    EXPECT_TRUE(positions(run).empty()) << "event 5 follows 4, which is not shard 1's";
    run = continuing_run(buffered, {100, 4}, 1, kPartitions, 100, 1);
    EXPECT_EQ(positions(run), (std::vector<std::int64_t>{5}));
    EXPECT_TRUE(run.rest_empty);
    run = continuing_run(buffered, {100, 2}, 1, kPartitions, 100);
    EXPECT_EQ(positions(run), (std::vector<std::int64_t>{3, 4, 5})) << "no shard named: as ever";

    LiveBuffer buffer{1 << 20};
    for (const auto& e : buffered) ASSERT_TRUE(buffer.push(e));
    buffer.trim({100, 1}, 1);
    EXPECT_EQ(buffer.size(), 1u);
    EXPECT_EQ(buffer.bytes(), footprint(live(5)));
    EXPECT_EQ(positions(buffer.run({100, 4}, 1, kPartitions, 100, 1)),
              (std::vector<std::int64_t>{5}));
}

TEST(LiveBuffer, TrimsWhatWasAppliedAndFreesItsBytes) {
    LiveBuffer buffer{1 << 20};
    for (std::int64_t p = 1; p <= 4; ++p) ASSERT_TRUE(buffer.push(live(p)));
    const auto all = buffer.bytes();
    buffer.trim({100, 2});
    EXPECT_EQ(buffer.size(), 2u);
    EXPECT_EQ(buffer.bytes(), all - footprint(live(1)) - footprint(live(2)));
    EXPECT_EQ(positions(buffer.run({100, 2}, 1, kPartitions, 100)),
              (std::vector<std::int64_t>{3, 4}));
    buffer.trim({100, 9});
    EXPECT_EQ(buffer.size(), 0u);
    EXPECT_EQ(buffer.bytes(), 0u);
    EXPECT_FALSE(buffer.has_after({100, 0}));
}

// The bound never loses an event nor reorders them: what did not fit leaves a gap, the
// run stops before it, the store fills it, and the live path resumes after it.
TEST(LiveBuffer, AFullBufferFallsBackToTheStoreWithoutLosingOrReordering) {
    const auto one = footprint(big(1));
    LiveBuffer buffer{2 * one};
    Checkpoint applied{};
    std::vector<std::int64_t> order;  // positions in the order they would be applied
    auto apply = [&](const std::vector<std::int64_t>& run) {
        for (auto p : run) order.push_back(p);
        if (!run.empty()) applied = {100, run.back()};
    };
    // Events 1..6 arrive while the projector is busy: 3..6 do not fit.
    for (std::int64_t p = 1; p <= 6; ++p) buffer.push(big(p));
    apply(positions(buffer.run(applied, 1, kPartitions, 100)));
    EXPECT_EQ(order, (std::vector<std::int64_t>{1, 2}));
    buffer.trim(applied);
    // 7 arrives and fits now, after the gap.
    ASSERT_TRUE(buffer.push(big(7)));
    auto run = buffer.run(applied, 1, kPartitions, 100);
    EXPECT_TRUE(run.events.empty()) << "3..6 are missing: the store's turn";
    EXPECT_FALSE(run.rest_empty);
    // The store carries 3..6 (the runtime reads past the checkpoint from the store).
    apply({3, 4, 5, 6});
    buffer.trim(applied);
    apply(positions(buffer.run(applied, 1, kPartitions, 100)));
    EXPECT_EQ(order, (std::vector<std::int64_t>{1, 2, 3, 4, 5, 6, 7}));
    buffer.trim(applied);
    EXPECT_EQ(buffer.bytes(), 0u);
}

}  // namespace
}  // namespace ordo::projections
