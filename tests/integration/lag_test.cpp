// The lag of a projection's partitions, counted on ordo.events: what projection status and its
// metrics show. Checked against a count made from the history itself.
#include <gtest/gtest.h>

#include <map>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "eventstore/lag.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::eventstore {
namespace {

constexpr int kPartitions = 4;

class PartitionLagTest : public ::testing::Test {
   protected:
    // 60 events over 12 streams of two categories, in commit order.
    void SetUp() override {
        for (int i = 0; i < 60; ++i) {
            const auto stream = std::string{i % 3 ? "order-" : "stock-"} + std::to_string(i % 12);
            store_.append(stream, ExpectedVersion::any(),
                          {NewEvent{platform::new_uuid(), "Happened", {{"i", i}}, {}}});
        }
        history_ = testing::read_all_until(store_, Checkpoint{}, 60);
        ASSERT_EQ(history_.size(), 60u);
    }

    // The checkpoint of each partition: partition p has applied its first 3 * p events.
    std::map<int, Checkpoint> checkpoints() const {
        std::map<int, Checkpoint> out;
        std::map<int, int> seen;
        for (int p = 0; p < kPartitions; ++p) out[p] = Checkpoint{};
        for (const auto& e : history_) {
            const int p = platform::partition_of(e.stream_id, kPartitions);
            if (++seen[p] <= 3 * p) out[p] = e.checkpoint();
        }
        return out;
    }

    // What the history says: the events of each partition past its checkpoint, of `category`
    // (all when empty).
    std::map<int, std::int64_t> expected(const std::string& category) const {
        std::map<int, std::int64_t> out;
        const auto from = checkpoints();
        for (int p = 0; p < kPartitions; ++p) out[p] = 0;
        for (const auto& e : history_) {
            const int p = platform::partition_of(e.stream_id, kPartitions);
            if (from.at(p) < e.checkpoint() && (category.empty() || e.category == category)) {
                ++out[p];
            }
        }
        return out;
    }

    static std::map<int, std::int64_t> counts(const std::vector<PartitionLag>& lags) {
        std::map<int, std::int64_t> out;
        for (const auto& lag : lags) out[lag.partition] = lag.events;
        return out;
    }

    testing::TestDatabase db_;
    platform::pg::Pool pool_{platform::pg::PoolOptions{
        .url = db_.command_url(), .size = 2, .preparers = {&EventStore::prepare}}};
    EventStore store_{pool_};
    std::vector<RecordedEvent> history_;
};

TEST_F(PartitionLagTest, CountsEachPartitionPastItsOwnCheckpointInOneScan) {
    pqxx::connection admin{db_.admin_url()};
    {
        pqxx::work txn{admin};
        for (const auto& [p, at] : checkpoints()) {
            txn.exec_params(
                "INSERT INTO ordo.projection_checkpoints (projection, partition, "
                "transaction_id, global_position) VALUES ('view', $1, $2::text::xid8, $3)",
                p, std::to_string(at.transaction_id), at.position);
        }
        txn.commit();
    }
    std::vector<std::pair<int, Checkpoint>> given;
    for (const auto& [p, at] : checkpoints()) given.emplace_back(p, at);
    pqxx::read_transaction txn{admin};
    for (const std::string category : {"", "order", "stock"}) {
        const std::vector<std::string> categories =
            category.empty() ? std::vector<std::string>{} : std::vector<std::string>{category};
        const auto stored =
            partition_lag(txn, "view", kPartitions, categories, {0, 1, 2, 3}, 100'000);
        EXPECT_EQ(counts(stored), expected(category)) << "category '" << category << "'";
        for (const auto& lag : stored) {
            EXPECT_EQ(lag.oldest_seconds > 0, lag.events > 0) << "partition " << lag.partition;
        }
        // From checkpoints given, as on a shard that holds the events but not the checkpoints.
        const auto after = partition_lag_after(txn, kPartitions, categories, given, 100'000);
        EXPECT_EQ(counts(after), expected(category)) << "category '" << category << "'";
    }
    // Only the partitions asked for.
    EXPECT_EQ(counts(partition_lag(txn, "view", kPartitions, {}, {1, 3}, 100'000)).size(), 2u);
    // Only events behind count towards the limit: one partition asked alone, with a limit of
    // its lag, is counted exactly, whatever the other partitions hold.
    const auto exact = expected("");
    ASSERT_GT(exact.at(3), 0);
    EXPECT_EQ(counts(partition_lag(txn, "view", kPartitions, {}, {3}, exact.at(3))),
              (std::map<int, std::int64_t>{{3, exact.at(3)}}));
    // Past the limit every count is a lower bound: the first 10 events behind, in commit
    // order from the earliest checkpoint (partition 0's, the start).
    const auto capped = counts(partition_lag(txn, "view", kPartitions, {}, {0, 1, 2, 3}, 10));
    const auto from = checkpoints();
    std::map<int, std::int64_t> first_ten;
    for (int p = 0; p < kPartitions; ++p) first_ten[p] = 0;
    int taken = 0;
    for (std::size_t i = 0; i < history_.size() && taken < 10; ++i) {
        const int p = platform::partition_of(history_[i].stream_id, kPartitions);
        if (from.at(p) < history_[i].checkpoint()) {
            ++first_ten[p];
            ++taken;
        }
    }
    EXPECT_EQ(capped, first_ten);
    for (const auto& [p, n] : capped) EXPECT_LE(n, expected("").at(p)) << "partition " << p;
}

}  // namespace
}  // namespace ordo::eventstore
