#pragma once

// How far a projection's partitions lag behind the log: the store's side of the lag
// figures, counted on ordo.events from each partition's checkpoint.

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <pqxx/transaction_base>

#include "eventstore/events.hpp"

namespace ordo::eventstore {

struct PartitionLag {
    int partition;
    std::int64_t events;    // not yet applied, below the xid horizon (see partition_lag)
    double oldest_seconds;  // how long the oldest of them counted has waited; 0 when none
};

// The lag of `projection` on each of `partitions` (of `partition_count`) that has a
// checkpoint row, counting only events of `categories` (all when empty). The partitions are
// counted together in one walk in commit order from the earliest checkpoint, at most
// `max_count` events behind in all: exact while they lag by fewer than that together; beyond,
// lower bounds, and a partition whose unapplied events all lie past the walk shows none.
// Events above the horizon are not counted: they may still commit below events already
// counted.
std::vector<PartitionLag> partition_lag(pqxx::transaction_base& txn, const std::string& projection,
                                        int partition_count,
                                        const std::vector<std::string>& categories,
                                        const std::vector<int>& partitions, std::int64_t max_count);

// The same counted from checkpoints given, (partition, checkpoint) each, on a database that
// holds the events but not the checkpoints: a shard of a sharded store, whose projection
// checkpoints live in the read database.
std::vector<PartitionLag> partition_lag_after(pqxx::transaction_base& txn, int partition_count,
                                              const std::vector<std::string>& categories,
                                              const std::vector<std::pair<int, Checkpoint>>& from,
                                              std::int64_t max_count);

}  // namespace ordo::eventstore
