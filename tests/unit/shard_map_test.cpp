// The partition -> shard map: its invariants, the first spread, routing by stream, and shard
// locations as operators write them and as services connect to them.
#include <gtest/gtest.h>

#include <set>
#include <string>
#include <vector>

#include "eventstore/shard_map.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/partition.hpp"

namespace ordo::eventstore {
namespace {

using platform::InvalidInput;

std::vector<ShardLocation> two_shards() {
    return {{0, "db0:5432", "ordo"}, {1, "db1:5432,db1b:5432", "ordo"}};
}

TEST(ShardMap, SpreadGivesEachShardEveryNthPartition) {
    auto map = ShardMap::spread(8, two_shards());
    EXPECT_EQ(map.version(), 1);
    EXPECT_EQ(map.partitions(), 8);
    EXPECT_EQ(map.partitions_of(0), (std::vector<int>{0, 2, 4, 6}));
    EXPECT_EQ(map.partitions_of(1), (std::vector<int>{1, 3, 5, 7}));
    EXPECT_EQ(map.location(1).hosts, "db1:5432,db1b:5432");
}

TEST(ShardMap, AStreamGoesToTheShardOfItsPartition) {
    auto map = ShardMap::spread(16, two_shards());
    std::set<int> used;
    for (int i = 0; i < 200; ++i) {
        const auto stream = "order-" + std::to_string(i);
        const auto partition = platform::partition_of(stream, 16);
        EXPECT_EQ(map.shard_of(stream), map.shard_of_partition(partition)) << stream;
        EXPECT_EQ(map.shard_of(stream), partition % 2) << stream;
        used.insert(map.shard_of(stream));
    }
    EXPECT_EQ(used, (std::set<int>{0, 1}));
}

TEST(ShardMap, TheImplicitMapPutsEverythingOnTheServicesOwnDatabase) {
    auto map = ShardMap::single(16);
    EXPECT_EQ(map.version(), 0);
    EXPECT_EQ(map.shards().size(), 1u);
    EXPECT_EQ(map.shard_of("order-1"), 0);
    EXPECT_EQ(map.partitions_of(0).size(), 16u);
    const std::string url = "postgresql://ordo_command:pw@127.0.0.1:5432/ordo?sslmode=verify-full";
    EXPECT_EQ(shard_url(url, map.location(0)), url);
}

TEST(ShardMap, RefusesWhatBreaksItsInvariants) {
    auto shards = two_shards();
    EXPECT_THROW(ShardMap(1, 0, shards, {}), InvalidInput);                      // no partitions
    EXPECT_THROW(ShardMap(1, 3, shards, {0, 1}), InvalidInput);                  // owners short
    EXPECT_THROW(ShardMap(1, 2, {}, {0, 0}), InvalidInput);                      // no shards
    EXPECT_THROW(ShardMap(1, 2, shards, {0, 2}), InvalidInput);                  // unknown owner
    EXPECT_THROW(ShardMap(1, 2, shards, {0, 0}), InvalidInput);                  // shard 1 idle
    EXPECT_THROW(ShardMap(1, 2, {shards[0], shards[0]}, {0, 0}), InvalidInput);  // twice
    EXPECT_THROW(ShardMap(-1, 2, shards, {0, 1}), InvalidInput);
    EXPECT_THROW(ShardMap(0, 2, shards, {0, 1}), InvalidInput);  // version 0 is implicit
    EXPECT_THROW(ShardMap(1, 2, {{0, "db0", "Ordo"}, shards[1]}, {0, 1}), InvalidInput);
    EXPECT_THROW(ShardMap(1, 2, {{0, "db0;rm", "ordo"}, shards[1]}, {0, 1}), InvalidInput);
    EXPECT_THROW(ShardMap(1, 2, {{300, "db0", "ordo"}, shards[1]}, {300, 1}), InvalidInput);
    EXPECT_THROW(ShardMap::spread(1, shards), InvalidInput);  // more shards than partitions
    EXPECT_NO_THROW(ShardMap(3, 2, shards, {1, 0}));
}

TEST(ShardMap, ReadsLocationsAsOperatorsWriteThem) {
    EXPECT_EQ(parse_location(2, "db2:5433/ordo_events"),
              (ShardLocation{2, "db2:5433", "ordo_events"}));
    EXPECT_EQ(parse_location(0, "a:1,b:2/ordo"), (ShardLocation{0, "a:1,b:2", "ordo"}));
    EXPECT_EQ(parse_location(0, "[::1]:5432/ordo").hosts, "[::1]:5432");
    EXPECT_EQ(to_string(parse_location(1, "db1/ordo")), "db1/ordo");
    for (const char* bad : {"db1", "/ordo", "db1/", "db1:5432/Ordo", "db 1/ordo", "db1/or-do",
                            "user@db1/ordo", "db1,/ordo", "db1:port/ordo"}) {
        EXPECT_THROW(parse_location(1, bad), InvalidInput) << bad;
    }
}

TEST(ShardMap, AShardsUrlKeepsTheRoleAndParametersOfTheServicesOwn) {
    const ShardLocation shard{1, "db1:5433,db1b:5433", "ordo_s1"};
    EXPECT_EQ(
        shard_url("postgresql://ordo_command:p%40ss@127.0.0.1:5432/ordo?sslmode=verify-full&x=1",
                  shard),
        "postgresql://ordo_command:p%40ss@db1:5433,db1b:5433/ordo_s1?sslmode=verify-full&x=1");
    EXPECT_EQ(shard_url("postgres://u@h/ordo", shard), "postgres://u@db1:5433,db1b:5433/ordo_s1");
    EXPECT_EQ(shard_url("postgresql://h:1", shard), "postgresql://db1:5433,db1b:5433/ordo_s1");
    EXPECT_EQ(shard_url("postgresql://h?sslmode=require", shard),
              "postgresql://db1:5433,db1b:5433/ordo_s1?sslmode=require");
    EXPECT_THROW(shard_url("host=h dbname=ordo", shard), InvalidInput);
    // Parameters that would send every shard to one place are refused, not passed on.
    for (const char* url :
         {"postgresql://u@/ordo?host=/var/run/postgresql",
          "postgresql://u@h/ordo?sslmode=require&port=5433", "postgresql://u@h/ordo?dbname=other",
          "postgresql://u@h/ordo?service=x", "postgresql://u@h/ordo?hostaddr=10.0.0.1"}) {
        EXPECT_THROW(shard_url(url, shard), InvalidInput) << url;
    }
    EXPECT_NO_THROW(shard_url("postgresql://u@h/ordo?application_name=x&sslhostname=y", shard));
}

}  // namespace
}  // namespace ordo::eventstore
