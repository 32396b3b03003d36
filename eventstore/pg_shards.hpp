// The event store over the shards of a map: a pool, an append notifier and an EventStore per
// shard, each stream routed to its partition's shard.
#pragma once

#include <memory>
#include <string>

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
    // Each shard's pool is made of this, `url` and `name` set per shard ("<name>-shard<id>").
    platform::pg::PoolOptions pool;
    const Upcasters* upcasters = nullptr;
};

// Thread-safe. Connections open lazily, so a shard that is down costs only the commands on
// its streams: they fail as platform::Unavailable, while every other shard goes on.
class PgShards final : public Shards {
   public:
    PgShards(ShardMap map, PgShardsOptions options, const platform::Logger& log);
    ~PgShards() override;

    Store& of(const std::string& stream) override;
    std::vector<Store*> all() override;

    const ShardMap& map() const;
    // The EventStore of shard `id` (which must be in the map).
    EventStore& shard(int id);
    // Each shard's pool and group-commit figures, labelled shard="<id>".
    void register_metrics(platform::metrics::Registry& registry);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::eventstore
