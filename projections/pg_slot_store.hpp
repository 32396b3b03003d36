#pragma once

// The projection runtime's slot store on PostgreSQL: checkpoints in ordo.projection_checkpoints,
// dead letters in ordo.dead_letters, status in ordo.projection_status, read models in the
// same database, each slot transaction one pqxx transaction on the runtime's own pool. The
// events come from the same database, in the same transaction; or, over a sharded store, from
// each partition's shard (eventstore::PgShardReaders), this database being the read database.

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "eventstore/shard_map.hpp"
#include "eventstore/topology.hpp"
#include "projections/slot_store.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::projections {

struct PgSlotStoreOptions {
    std::string database_url;
    int partitions = eventstore::kDefaultPartitions;
    std::string instance;  // the checkpoints' owner
    // Bounds each statement: a read model locked or stalled past it counts as a sink failure.
    std::chrono::milliseconds statement_timeout{5000};
    // Bounds each transaction (pg::Pool's operation bound).
    std::chrono::milliseconds transaction_bound{60'000};
    // A written shard map: each partition's events are read from its shard. Unset, or the
    // implicit map: from this database.
    std::optional<eventstore::ShardMap> shards;
};

class PgSlotStore final : public SlotStore {
   public:
    PgSlotStore(PgSlotStoreOptions options, platform::metrics::Registry& metrics);
    ~PgSlotStore() override;
    PgSlotStore(const PgSlotStore&) = delete;
    PgSlotStore& operator=(const PgSlotStore&) = delete;

    void transact(const std::function<void(SlotTxn&)>& work) override;
    platform::FailureKind classify(const std::exception_ptr& error) const override;
    // Over a sharded store, whether any shard's horizon hides committed events (false
    // unsharded: the read database's own horizon is the store's). Thread-safe.
    bool hidden_on_shards();
    // Over a sharded store, `added` is told of each shard first read from that the map the
    // store was made with does not name (see PgShardReaders::on_new_shard).
    void on_new_shard(std::function<void(const eventstore::ShardLocation&)> added);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::projections
