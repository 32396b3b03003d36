// The partition count a database is set up for: recorded by the first service, checked by
// every later one.
#include "eventstore/topology.hpp"

#include <string>

#include <pqxx/pqxx>

#include "platform/errors.hpp"

namespace ordo::eventstore {

PartitionCountMismatch::PartitionCountMismatch(int recorded, int requested)
    : std::runtime_error("the database's events are partitioned " + std::to_string(recorded) +
                         " ways, but this service was started with " + std::to_string(requested) +
                         " partitions (--partitions, ORDO_PARTITIONS); every service of one "
                         "database must use the recorded count"),
      recorded_{recorded} {}

void claim_partition_count(pqxx::transaction_base& txn, int partitions) {
    if (partitions < 1 || partitions > kMaxPartitions) {
        throw platform::InvalidInput("the partition count must be 1 to " +
                                     std::to_string(kMaxPartitions));
    }
    const auto recorded =
        txn.exec_params1("SELECT ordo.claim_partition_count($1)", partitions)[0].as<int>();
    if (recorded != partitions) throw PartitionCountMismatch(recorded, partitions);
}

}  // namespace ordo::eventstore
