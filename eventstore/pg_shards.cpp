// PgShards: one EventStore per shard of the map, and the routing of streams to them.
#include "eventstore/pg_shards.hpp"

#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/shard_catalog.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "platform/pg/session.hpp"

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

    PgShardsOptions options;
    platform::Logger log;
    const int partitions;
    // Routing, read on every command without a lock: replaced entry by entry when a newer
    // map comes. A command routed by the old entry meets the old shard's fence and asks again.
    std::unique_ptr<std::atomic<EventStore*>[]> owner;  // by partition
    std::unique_ptr<std::atomic<int>[]> owner_id;       // by partition

    mutable std::mutex mutex;  // the rest
    ShardMap map;
    std::map<int, Shard> shards;  // only ever added to: stores handed out stay valid
    std::vector<Store*> stores;   // by shard id, ascending
    platform::metrics::Registry* registry = nullptr;
    std::optional<platform::pg::Session> control;
    std::chrono::steady_clock::time_point last_read{};  // when the last read began

    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    bool stopping = false;
    std::thread refresher;

    Impl(ShardMap m, PgShardsOptions o, const platform::Logger& l)
        : options{std::move(o)},
          log{l},
          partitions{m.partitions()},
          owner{new std::atomic<EventStore*>[static_cast<std::size_t>(partitions)]},
          owner_id{new std::atomic<int>[static_cast<std::size_t>(partitions)]},
          map{std::move(m)} {
        for (const auto& location : map.shards()) add(location);
        route();
    }

    // Under `mutex`.
    void add(const ShardLocation& location) {
        Shard shard;
        shard.pool =
            std::make_unique<platform::pg::Pool>(shard_pool(options.pool, options.url, location));
        shard.notifier = std::make_unique<AppendNotifier>(
            shard.pool->options().url,
            log.with_component("notifier-shard" + std::to_string(location.id)));
        shard.store = std::make_unique<EventStore>(*shard.pool, shard.notifier.get(), std::nullopt,
                                                   options.upcasters);
        if (registry) register_shard(location.id, shard);
        shards.emplace(location.id, std::move(shard));
        stores.clear();
        for (auto& [id, each] : shards) stores.push_back(each.store.get());
    }

    void register_shard(int id, Shard& shard) {
        shard.pool->register_metrics(*registry);
        shard.store->register_metrics(*registry, {{"shard", std::to_string(id)}});
    }

    // Under `mutex`: every partition to its owner in `map`.
    void route() {
        for (int p = 0; p < partitions; ++p) {
            const int id = map.shard_of_partition(p);
            owner[static_cast<std::size_t>(p)] = shards.at(id).store.get();
            owner_id[static_cast<std::size_t>(p)] = id;
        }
    }

    // Under `mutex`: the map in force in the control database, when newer than `map`.
    std::optional<ShardMap> read_newer() {
        if (!control || !control->is_open()) {
            control.emplace(options.url, options.pool.name + "-map");
            pqxx::nontransaction{*control}.exec("SET statement_timeout = 5000");
        }
        pqxx::read_transaction txn{*control};
        auto current = shard_map_for(txn, partitions);
        if (current.version() <= map.version()) return std::nullopt;
        return current;
    }
};

PgShards::PgShards(ShardMap map, PgShardsOptions options, const platform::Logger& log)
    : impl_{std::make_unique<Impl>(std::move(map), std::move(options), log)} {
    if (impl_->options.refresh_every.count() > 0) {
        impl_->refresher = std::thread{[impl = impl_.get(), this] {
            std::unique_lock lock{impl->stop_mutex};
            while (!impl->stop_cv.wait_for(lock, impl->options.refresh_every,
                                           [impl] { return impl->stopping; })) {
                lock.unlock();
                refresh();
                lock.lock();
            }
        }};
    }
}

PgShards::~PgShards() {
    if (impl_->refresher.joinable()) {
        {
            std::lock_guard lock{impl_->stop_mutex};
            impl_->stopping = true;
        }
        impl_->stop_cv.notify_all();
        impl_->refresher.join();
    }
}

Store& PgShards::of(const std::string& stream) {
    return *impl_->owner[static_cast<std::size_t>(
        platform::partition_of(stream, impl_->partitions))];
}

std::vector<Store*> PgShards::all() {
    std::lock_guard lock{impl_->mutex};
    return impl_->stores;
}

std::optional<int> PgShards::shard_id(const std::string& stream) const {
    return impl_
        ->owner_id[static_cast<std::size_t>(platform::partition_of(stream, impl_->partitions))];
}

bool PgShards::refresh() {
    // One read for every caller that asked before it began: a burst of refused commands
    // (a partition paused by a move) costs one query, and none is answered from a read that
    // began before it asked.
    const auto asked = std::chrono::steady_clock::now();
    std::lock_guard lock{impl_->mutex};
    if (impl_->last_read >= asked) return false;
    impl_->last_read = std::chrono::steady_clock::now();
    try {
        auto newer = impl_->read_newer();
        if (!newer) return false;
        for (const auto& location : newer->shards()) {
            if (!impl_->shards.count(location.id)) impl_->add(location);
        }
        const auto from = impl_->map.version();
        impl_->map = std::move(*newer);
        impl_->route();
        impl_->log.info("following a newer shard map",
                        {{"from_version", from}, {"version", impl_->map.version()}});
        return true;
    } catch (const std::exception& e) {
        impl_->control.reset();
        impl_->log.warn("cannot read the shard map; routing by the one in hand",
                        {{"error", e.what()}});
        return false;
    }
}

ShardMap PgShards::map() const {
    std::lock_guard lock{impl_->mutex};
    return impl_->map;
}

EventStore& PgShards::shard(int id) {
    std::lock_guard lock{impl_->mutex};
    return *impl_->shards.at(id).store;
}

void PgShards::register_metrics(platform::metrics::Registry& registry) {
    std::lock_guard lock{impl_->mutex};
    impl_->registry = &registry;
    for (auto& [id, shard] : impl_->shards) impl_->register_shard(id, shard);
}

struct PgShardReaders::Impl {
    std::string url;
    platform::pg::PoolOptions pool;
    mutable std::mutex mutex;  // pools is added to when a move names a shard not in `map`
    ShardMap map;
    std::map<int, std::unique_ptr<platform::pg::Pool>> pools;
    platform::metrics::Registry* registry = nullptr;
    // Told of each shard added after construction (on_new_shard).
    std::function<void(const ShardLocation&)> on_new;
    // hidden(): a shard that could not be asked is not asked again before this, so that a
    // shard whose host has gone silent (each try waits out the connect timeout) does not
    // hold up every wait of a reader that asks before it waits.
    std::mutex probe_mutex;
    std::map<int, std::chrono::steady_clock::time_point> probe_after;
    static constexpr std::chrono::seconds kProbeBackoff{5};

    Impl(std::string u, platform::pg::PoolOptions p, ShardMap m)
        : url{std::move(u)}, pool{std::move(p)}, map{std::move(m)} {
        for (const auto& location : map.shards()) add(location);
    }

    void add(const ShardLocation& location) {
        auto added = std::make_unique<platform::pg::Pool>(shard_pool(pool, url, location));
        if (registry) added->register_metrics(*registry);
        pools.emplace(location.id, std::move(added));
    }

    // The pool of shard `id`; a shard the map in hand does not name comes from the map in
    // force (a partition was moved to it after this process started).
    platform::pg::Pool& of_shard(int id) {
        std::function<void(const ShardLocation&)> tell;
        ShardLocation location;
        platform::pg::Pool* found = nullptr;
        {
            std::lock_guard lock{mutex};
            if (auto it = pools.find(id); it != pools.end()) return *it->second;
            platform::pg::Session conn{url, pool.name + "-map"};
            pqxx::read_transaction txn{conn};
            auto current = shard_map_for(txn, map.partitions());
            location = current.location(id);  // out_of_range: no such shard in any map
            add(location);
            found = pools.at(id).get();
            tell = on_new;
        }
        // Outside the lock: the callback may start a listener, which may take its time.
        if (tell) tell(location);
        return *found;
    }

    // Every shard this reader has a pool for: the map's, and those added since.
    std::vector<int> known() {
        std::lock_guard lock{mutex};
        std::vector<int> ids;
        for (const auto& [id, unused] : pools) ids.push_back(id);
        return ids;
    }
};

PgShardReaders::PgShardReaders(ShardMap map, const std::string& url, platform::pg::PoolOptions pool)
    : impl_{std::make_unique<Impl>(url, std::move(pool), std::move(map))} {}

PgShardReaders::~PgShardReaders() = default;

const ShardMap& PgShardReaders::map() const {
    return impl_->map;
}

std::vector<RecordedEvent> PgShardReaders::read_partition(
    Checkpoint after, int partition, const std::vector<std::string>& categories,
    std::size_t max_count, std::optional<int> shard) {
    return impl_->of_shard(shard.value_or(impl_->map.shard_of_partition(partition)))
        .transact<pqxx::nontransaction>([&](pqxx::nontransaction& txn) {
            return EventStore::read_partition(txn, after, impl_->map.partitions(), partition,
                                              categories, max_count);
        });
}

std::optional<Checkpoint> PgShardReaders::head(int partition, std::optional<int> shard) {
    return impl_->of_shard(shard.value_or(impl_->map.shard_of_partition(partition)))
        .transact<pqxx::nontransaction>(
            [](pqxx::nontransaction& txn) { return EventStore::head(txn); });
}

ChangedPartitions PgShardReaders::changes_after(int shard, Checkpoint after, std::size_t limit) {
    return impl_->of_shard(shard).transact<pqxx::nontransaction>([&](pqxx::nontransaction& txn) {
        return EventStore::changes_after(txn, after, impl_->map.partitions(), limit);
    });
}

std::optional<double> PgShardReaders::hidden() {
    auto& d = *impl_;
    std::optional<double> longest;
    bool unknown = false;  // some shard could not be asked
    for (const int shard : d.known()) {
        const auto now = std::chrono::steady_clock::now();
        {
            std::lock_guard lock{d.probe_mutex};
            if (auto it = d.probe_after.find(shard);
                it != d.probe_after.end() && now < it->second) {
                unknown = true;
                continue;
            }
        }
        auto unreachable = [&] {
            std::lock_guard lock{d.probe_mutex};
            d.probe_after[shard] = now + Impl::kProbeBackoff;
            unknown = true;
        };
        try {
            const auto age = d.of_shard(shard).transact<pqxx::nontransaction>(
                [](pqxx::nontransaction& txn) { return EventStore::hidden_for(txn); });
            if (age && (!longest || *age > *longest)) longest = age;
        } catch (const platform::Unavailable&) {
            unreachable();
        } catch (const std::exception&) {
            if (!platform::pg::Pool::is_connection_failure(std::current_exception())) throw;
            unreachable();
        }
    }
    if (unknown && !longest) longest = 0.0;
    return longest;
}

std::vector<PartitionLag> PgShardReaders::lag(const std::vector<std::string>& categories,
                                              const std::vector<std::pair<int, Checkpoint>>& from,
                                              std::int64_t max_count,
                                              const std::map<int, int>& on_shard) {
    std::map<int, std::vector<std::pair<int, Checkpoint>>> by_shard;
    for (const auto& entry : from) {
        auto named = on_shard.find(entry.first);
        by_shard[named != on_shard.end() ? named->second
                                         : impl_->map.shard_of_partition(entry.first)]
            .push_back(entry);
    }
    std::vector<PartitionLag> out;
    for (const auto& [shard, entries] : by_shard) {
        // A shard that is down has no lag to tell: its partitions are left out, and the
        // others' figures still come.
        try {
            auto counted = impl_->of_shard(shard).transact<pqxx::nontransaction>(
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

void PgShardReaders::on_new_shard(std::function<void(const ShardLocation&)> added) {
    std::lock_guard lock{impl_->mutex};
    impl_->on_new = std::move(added);
}

void PgShardReaders::register_metrics(platform::metrics::Registry& registry) {
    std::lock_guard lock{impl_->mutex};
    impl_->registry = &registry;
    for (auto& [id, pool] : impl_->pools) pool->register_metrics(registry);
}

}  // namespace ordo::eventstore
