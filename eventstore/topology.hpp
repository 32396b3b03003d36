// How streams are spread over partitions and where their events go on the wire: the defaults
// every service's options start from, and the partition count a database is set up for.
#pragma once

#include <optional>
#include <stdexcept>

namespace pqxx {
class transaction_base;
}

namespace ordo::eventstore {

// P: a stream's partition is platform::partition_of(stream, P). Every service of one
// database must use the same P (see claim_partition_count). The default of a new store: it
// bounds how many shards the store can ever be spread over, and an idle partition costs
// next to nothing (a projector's sweep surveys the partitions instead of stepping each:
// projections/sweep_plan.hpp). A store deployed with another count keeps it.
inline constexpr int kDefaultPartitions = 64;
inline constexpr int kMaxPartitions = 1024;
// The JetStream stream the relay publishes to, and its subjects'
// "<prefix>.<partition>.<category>" prefix.
inline constexpr const char* kDefaultJetStream = "ORDO_EVENTS";
inline constexpr const char* kDefaultSubjectPrefix = "ordo.events";

// The database is set up for another partition count than this service was started with.
class PartitionCountMismatch : public std::runtime_error {
   public:
    PartitionCountMismatch(int recorded, int requested);
    int recorded() const { return recorded_; }

   private:
    int recorded_;
};

// Records `partitions` as the database's partition count when none is recorded yet (the first
// long-running writer to start decides: relay, projector, sagas), in the caller's
// transaction; the function runs as its owner, so no role needs grants on the table. Throws
// PartitionCountMismatch when another count is recorded, platform::InvalidInput outside
// 1..kMaxPartitions.
void claim_partition_count(pqxx::transaction_base& txn, int partitions);

// The count recorded in the database, if any (readers: the query and migrator roles).
std::optional<int> recorded_partition_count(pqxx::transaction_base& txn);

// For a writer given no count of its own: the count recorded, or `fallback`, which it
// records as claim_partition_count does when none is.
int adopt_partition_count(pqxx::transaction_base& txn, int fallback);

// Compares only, for readers and one-shot tools (the query service, `ordo rebuild`), so
// that a tool run with a default never decides for the fleet: throws PartitionCountMismatch
// when another count is recorded; nothing is recorded when none is.
void check_partition_count(pqxx::transaction_base& txn, int partitions);

}  // namespace ordo::eventstore
