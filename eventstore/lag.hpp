#pragma once

// How far a projection's partitions lag behind the log: the store's side of the lag
// figures, counted on ordo.events from each partition's checkpoint.

#include <cstdint>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

namespace ordo::eventstore {

struct PartitionLag {
    int partition;
    std::int64_t events;    // not yet applied, below the xid horizon, counted up to the limit
    double oldest_seconds;  // how long the oldest of them has waited; 0 when none
};

// The lag of `projection` on each of `partitions` (of `partition_count`) that has a
// checkpoint row, counting only events of `categories` (all when empty), at most
// `max_count` per partition. Events above the horizon are not counted: they may still
// commit below events already counted.
std::vector<PartitionLag> partition_lag(pqxx::transaction_base& txn, const std::string& projection,
                                        int partition_count,
                                        const std::vector<std::string>& categories,
                                        const std::vector<int>& partitions, std::int64_t max_count);

}  // namespace ordo::eventstore
