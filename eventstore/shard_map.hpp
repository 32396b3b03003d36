// Which shard holds each partition: the map a sharded deployment routes every stream by.
#pragma once

// A shard is one PostgreSQL database holding the whole event-store schema (events, streams,
// snapshots, command log, relay checkpoint) for the partitions the map gives it. A stream's
// partition is platform::partition_of(stream, P) (unchanged by sharding); the map says which
// shard owns each partition, so everything of a stream, and the command-log row of a command
// on it, sit in one database and a command stays one local transaction.
//
// Invariants of a ShardMap (the constructor refuses anything else with InvalidInput):
// - 1 <= partitions <= kMaxPartitions, and owners has exactly one entry per partition;
// - shard ids are unique, 0..kMaxShards-1, and every owner names one of the shards;
// - every shard owns at least one partition (a shard without any is not in the map yet);
// - version >= 1 grows by one with every change written to the control database; version 0
//   is the implicit map (single), whose one shard has an empty location.
//
// The map lives in the control database (ordo.shards, ordo.shard_map: see shard_catalog.hpp).
// A deployment without one runs on a single shard: the map of version 0 that puts every
// partition on shard 0, whose database is the one the service was pointed at.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace ordo::eventstore {

inline constexpr int kMaxShards = 256;

// Where a shard's database is: libpq's host list ("db1:5432" or, for a highly-available
// cluster, "db1:5432,db2:5432") and the database's name. No credentials: every service
// connects with its own role, whose password is its own business (shard_url).
struct ShardLocation {
    int id = 0;
    std::string hosts;
    std::string database;
    bool operator==(const ShardLocation&) const = default;
};

class ShardMap {
   public:
    // Throws platform::InvalidInput naming what is wrong (see the invariants above).
    ShardMap(std::int64_t version, int partitions, std::vector<ShardLocation> shards,
             std::vector<int> owners);

    // Every partition on one shard: the map of a deployment that has none written (version
    // 0). Its one shard has an empty location: the database the service was pointed at.
    static ShardMap single(int partitions);

    // The first map of a new sharded store: partition p on shards[p mod shards.size()], so
    // each shard owns every N-th partition and a later split moves whole partitions.
    static ShardMap spread(int partitions, std::vector<ShardLocation> shards);

    std::int64_t version() const { return version_; }
    int partitions() const { return static_cast<int>(owners_.size()); }
    const std::vector<ShardLocation>& shards() const { return shards_; }
    const std::vector<int>& owners() const { return owners_; }

    // The shard that owns `partition` (0 <= partition < partitions()).
    int shard_of_partition(int partition) const;
    // The shard that owns `stream`'s partition.
    int shard_of(std::string_view stream) const;
    // The location of shard `id`; throws std::out_of_range for an id not in the map.
    const ShardLocation& location(int id) const;
    // The partitions shard `id` owns, ascending.
    std::vector<int> partitions_of(int id) const;

    bool operator==(const ShardMap&) const = default;

   private:
    std::int64_t version_;
    std::vector<ShardLocation> shards_;  // ascending by id
    std::vector<int> owners_;            // owners_[partition] = shard id
};

// Checks a shard location as an operator types it ("host:port[,host:port...]/database"),
// returning it with `id`; throws platform::InvalidInput saying what is wrong.
ShardLocation parse_location(int id, std::string_view text);
// "hosts/database", as parse_location reads it.
std::string to_string(const ShardLocation& location);

// `url` (a postgresql:// URI with a service's role and parameters) pointed at `location`: the
// hosts and the database replaced, user, password and parameters kept. An empty location
// (the implicit map's shard) is `url` itself.
std::string shard_url(const std::string& url, const ShardLocation& location);

}  // namespace ordo::eventstore
