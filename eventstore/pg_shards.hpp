// The event store over the shards of a map: a pool, an append notifier and an EventStore per
// shard, each stream routed to its partition's shard.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eventstore/events.hpp"
#include "eventstore/lag.hpp"

#include "eventstore/shard_map.hpp"
#include "eventstore/shards.hpp"
#include "platform/core/log.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::eventstore {

class EventStore;
class Upcasters;

struct PgShardsOptions {
    // A service's own database URL; each shard's is this pointed at its location (shard_url).
    std::string url;
    // Each shard's pool is made of this, `url` and `name` set per shard ("<name>-shard<id>"),
    // EventStore::prepare added to its preparers.
    platform::pg::PoolOptions pool;
    const Upcasters* upcasters = nullptr;
    // How often the map is read again from the control database (`url`'s), so that a newer
    // one (a partition moved) is followed without a restart. Zero: only when refresh() is
    // called.
    std::chrono::milliseconds refresh_every{1000};
};

// Thread-safe. Connections open lazily, so a shard that is down costs only the commands on
// its streams: they fail as platform::Unavailable, while every other shard goes on. The map
// may be replaced by a newer one at any time (refresh); a shard, once added, stays.
class PgShards final : public Shards {
   public:
    PgShards(ShardMap map, PgShardsOptions options, const platform::Logger& log);
    ~PgShards() override;

    Store& of(const std::string& stream) override;
    std::vector<Store*> all() override;
    std::optional<int> shard_id(const std::string& stream) const override;
    // Callers that ask while a read is under way wait for the next one, which serves them all:
    // a partition paused by a move does not turn every refused command into a query.
    bool refresh() override;

    // The map in force.
    ShardMap map() const;
    // The EventStore of shard `id` (which must be in the map).
    EventStore& shard(int id);
    // Each shard's pool and group-commit figures, labelled shard="<id>".
    void register_metrics(platform::metrics::Registry& registry);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// Reads of each partition's history on its own shard, for a reader whose own transactions are
// elsewhere (the projection runtime, whose checkpoints and read models live in the read
// database): a small pool per shard, every read a statement on its own. Thread-safe.
class PgShardReaders {
   public:
    // `pool` names each shard's pool ("<name>-shard<id>") and bounds its statements.
    PgShardReaders(ShardMap map, const std::string& url, platform::pg::PoolOptions pool);
    ~PgShardReaders();

    const ShardMap& map() const;
    // As EventStore::read_partition, on `shard`, or else on the partition's shard in the map
    // this reader was made with. A checkpoint names its shard once a move rebased it (its
    // position is in that shard's commit order): readers pass it, and need no newer map.
    std::vector<RecordedEvent> read_partition(Checkpoint after, int partition,
                                              const std::vector<std::string>& categories,
                                              std::size_t max_count,
                                              std::optional<int> shard = std::nullopt);
    // As EventStore::head, on `shard`, or else on the shard of `partition`.
    std::optional<Checkpoint> head(int partition, std::optional<int> shard = std::nullopt);
    // As EventStore::changes_after, on `shard`.
    ChangedPartitions changes_after(int shard, Checkpoint after, std::size_t limit);
    // As EventStore::hidden_for, over every shard read from (the map's, and any a checkpoint
    // named since): the longest any shard's horizon hides a committed event (nullopt: none
    // hidden). A shard that cannot be reached is not asked again for five seconds, and
    // meanwhile counts as hiding events (age 0): it may be back before it is asked again, and
    // a reader told "nothing hidden" would not look again soon at what the horizon hid there.
    std::optional<double> hidden();
    // As partition_lag_after, each partition counted on its own shard (`on_shard`'s, for the
    // partitions it names); the partitions of a shard that cannot be reached (no connection,
    // or a lost one) are left out.
    std::vector<PartitionLag> lag(const std::vector<std::string>& categories,
                                  const std::vector<std::pair<int, Checkpoint>>& from,
                                  std::int64_t max_count, const std::map<int, int>& on_shard = {});
    void register_metrics(platform::metrics::Registry& registry);
    // `added` is called, on the reading thread and after the shard's pool exists, for each
    // shard first read from that the map this reader was made with does not name (a
    // partition was moved to it since): whoever listens to the map's shards' appends listens
    // to its too. Replaces any earlier callback.
    void on_new_shard(std::function<void(const ShardLocation&)> added);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::eventstore
