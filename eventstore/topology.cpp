// The partition count a database is set up for: recorded by the first service, checked by
// every later one.
#include "eventstore/topology.hpp"

#include <string>

#include <pqxx/pqxx>

#include "platform/core/errors.hpp"

namespace ordo::eventstore {

PartitionCountMismatch::PartitionCountMismatch(int recorded, int requested)
    : std::runtime_error("the database's events are partitioned " + std::to_string(recorded) +
                         " ways, but this service was started with " + std::to_string(requested) +
                         " partitions (--partitions, ORDO_PARTITIONS); every service of one "
                         "database must use the recorded count"),
      recorded_{recorded} {}

namespace {

void check_range(int partitions) {
    if (partitions < 1 || partitions > kMaxPartitions) {
        throw platform::InvalidInput("the partition count must be 1 to " +
                                     std::to_string(kMaxPartitions));
    }
}

}  // namespace

void claim_partition_count(pqxx::transaction_base& txn, int partitions) {
    check_range(partitions);
    const auto recorded =
        txn.exec_params1("SELECT ordo.claim_partition_count($1)", partitions)[0].as<int>();
    if (recorded != partitions) throw PartitionCountMismatch(recorded, partitions);
}

int adopt_partition_count(pqxx::transaction_base& txn, int fallback) {
    check_range(fallback);
    return txn.exec_params1("SELECT ordo.claim_partition_count($1)", fallback)[0].as<int>();
}

std::optional<int> recorded_partition_count(pqxx::transaction_base& txn) {
    const auto recorded = txn.exec1("SELECT ordo.recorded_partition_count()")[0];
    if (recorded.is_null()) return std::nullopt;
    return recorded.as<int>();
}

void check_partition_count(pqxx::transaction_base& txn, int partitions) {
    check_range(partitions);
    const auto recorded = txn.exec1("SELECT ordo.recorded_partition_count()")[0];
    if (!recorded.is_null() && recorded.as<int>() != partitions) {
        throw PartitionCountMismatch(recorded.as<int>(), partitions);
    }
}

}  // namespace ordo::eventstore
