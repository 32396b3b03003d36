// PgShards: one EventStore per shard of the map, and the routing of streams to them.
#include "eventstore/pg_shards.hpp"

#include <map>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"

namespace ordo::eventstore {
namespace {

// `base` for the pool of `location`: its URL, a name of its own, the store's statements.
platform::pg::PoolOptions shard_pool(const platform::pg::PoolOptions& base, const std::string& url,
                                     const ShardLocation& location) {
    auto options = base;
    options.url = shard_url(url, location);
    options.name = base.name + "-shard" + std::to_string(location.id);
    options.preparers.push_back(&EventStore::prepare);
    return options;
}

}  // namespace

struct PgShards::Impl {
    struct Shard {
        std::unique_ptr<platform::pg::Pool> pool;
        std::unique_ptr<AppendNotifier> notifier;
        std::unique_ptr<EventStore> store;
    };

    ShardMap map;
    std::map<int, Shard> shards;
    std::vector<Store*> stores;      // by shard id, ascending
    std::vector<EventStore*> owner;  // by partition

    Impl(ShardMap m, PgShardsOptions options, const platform::Logger& log) : map{std::move(m)} {
        for (const auto& location : map.shards()) {
            Shard shard;
            shard.pool = std::make_unique<platform::pg::Pool>(
                shard_pool(options.pool, options.url, location));
            shard.notifier = std::make_unique<AppendNotifier>(
                shard.pool->options().url,
                log.with_component("notifier-shard" + std::to_string(location.id)));
            shard.store = std::make_unique<EventStore>(*shard.pool, shard.notifier.get(),
                                                       std::nullopt, options.upcasters);
            stores.push_back(shard.store.get());
            shards.emplace(location.id, std::move(shard));
        }
        for (int p = 0; p < map.partitions(); ++p) {
            owner.push_back(shards.at(map.shard_of_partition(p)).store.get());
        }
    }
};

PgShards::PgShards(ShardMap map, PgShardsOptions options, const platform::Logger& log)
    : impl_{std::make_unique<Impl>(std::move(map), std::move(options), log)} {}

PgShards::~PgShards() = default;

Store& PgShards::of(const std::string& stream) {
    return *impl_->owner[static_cast<std::size_t>(
        platform::partition_of(stream, impl_->map.partitions()))];
}

std::vector<Store*> PgShards::all() {
    return impl_->stores;
}

std::optional<int> PgShards::shard_id(const std::string& stream) const {
    return impl_->map.shard_of(stream);
}

const ShardMap& PgShards::map() const {
    return impl_->map;
}

EventStore& PgShards::shard(int id) {
    return *impl_->shards.at(id).store;
}

void PgShards::register_metrics(platform::metrics::Registry& registry) {
    for (auto& [id, shard] : impl_->shards) {
        shard.pool->register_metrics(registry);
        shard.store->register_metrics(registry, {{"shard", std::to_string(id)}});
    }
}

struct PgShardReaders::Impl {
    ShardMap map;
    std::map<int, std::unique_ptr<platform::pg::Pool>> pools;

    platform::pg::Pool& of_partition(int partition) {
        return *pools.at(map.shard_of_partition(partition));
    }
};

PgShardReaders::PgShardReaders(ShardMap map, const std::string& url, platform::pg::PoolOptions pool)
    : impl_{std::make_unique<Impl>(Impl{std::move(map), {}})} {
    for (const auto& location : impl_->map.shards()) {
        impl_->pools.emplace(location.id,
                             std::make_unique<platform::pg::Pool>(shard_pool(pool, url, location)));
    }
}

PgShardReaders::~PgShardReaders() = default;

const ShardMap& PgShardReaders::map() const {
    return impl_->map;
}

std::vector<RecordedEvent> PgShardReaders::read_partition(
    Checkpoint after, int partition, const std::vector<std::string>& categories,
    std::size_t max_count) {
    return impl_->of_partition(partition).transact<pqxx::nontransaction>(
        [&](pqxx::nontransaction& txn) {
            return EventStore::read_partition(txn, after, impl_->map.partitions(), partition,
                                              categories, max_count);
        });
}

std::optional<Checkpoint> PgShardReaders::head(int partition) {
    return impl_->of_partition(partition).transact<pqxx::nontransaction>(
        [](pqxx::nontransaction& txn) { return EventStore::head(txn); });
}

std::vector<PartitionLag> PgShardReaders::lag(const std::vector<std::string>& categories,
                                              const std::vector<std::pair<int, Checkpoint>>& from,
                                              std::int64_t max_count) {
    std::map<int, std::vector<std::pair<int, Checkpoint>>> by_shard;
    for (const auto& entry : from) {
        by_shard[impl_->map.shard_of_partition(entry.first)].push_back(entry);
    }
    std::vector<PartitionLag> out;
    for (const auto& [shard, entries] : by_shard) {
        // A shard that is down has no lag to tell: its partitions are left out, and the
        // others' figures still come.
        try {
            auto counted = impl_->pools.at(shard)->transact<pqxx::nontransaction>(
                [&](pqxx::nontransaction& txn) {
                    return partition_lag_after(txn, impl_->map.partitions(), categories, entries,
                                               max_count);
                });
            out.insert(out.end(), counted.begin(), counted.end());
        } catch (const platform::Unavailable&) {
            // The shard cannot be reached (no connection came): nothing counted.
        } catch (const std::exception&) {
            // A lost connection is a shard down too; anything else (a timeout on a large
            // backlog, say) is the caller's to see.
            if (!platform::pg::Pool::is_connection_failure(std::current_exception())) throw;
        }
    }
    return out;
}

void PgShardReaders::register_metrics(platform::metrics::Registry& registry) {
    for (auto& [id, pool] : impl_->pools) pool->register_metrics(registry);
}

}  // namespace ordo::eventstore
