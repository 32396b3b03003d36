#include "query/shard_sources.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>
#include <utility>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "eventstore/shard_catalog.hpp"
#include "platform/core/metrics.hpp"

namespace ordo::query {

struct ShardSources::Impl {
    mutable std::mutex mutex;
    std::vector<ShardSource> sources;  // in shard order
    std::uint64_t generation = 0;
    // The pools this made (every shard's but the home database's); never removed.
    std::map<int, std::unique_ptr<platform::pg::Pool>> pools;

    // Set for sources that follow the map; null for fixed ones.
    platform::pg::Pool* home = nullptr;
    Options options;
    platform::Logger log = platform::Logger::null_logger();
    platform::metrics::Registry* registry = nullptr;
    std::int64_t version = 0;                           // of the newest map read
    std::chrono::steady_clock::time_point last_read{};  // of the last map read begun; none yet
    std::mutex refresh_mutex;                           // one map read at a time

    std::mutex stop_mutex;
    std::condition_variable stop_cv;
    bool stopping = false;
    std::thread refresher;

    // Whether every one of `shards` is in hand.
    bool has(const std::vector<int>& shards) const {
        std::lock_guard lock{mutex};
        return std::all_of(shards.begin(), shards.end(), [&](int id) {
            return std::any_of(sources.begin(), sources.end(),
                               [&](const auto& s) { return s.shard == id; });
        });
    }

    // Reads the map and adds the shards a newer one names; under `refresh_mutex`. The shards
    // added, or nullopt when the map could not be read or a shard not added (logged).
    std::optional<std::uint64_t> read_map() {
        last_read = std::chrono::steady_clock::now();
        try {
            std::optional<eventstore::ShardMap> map;
            home->transact<pqxx::read_transaction>(
                [&](auto& txn) { map = eventstore::read_shard_map(txn); });
            if (!map || map->version() <= version) return 0;
            std::lock_guard lock{mutex};
            const auto before = generation;
            for (const auto& location : map->shards()) add(location);
            log.info("following a newer shard map", {{"from_version", version},
                                                     {"version", map->version()},
                                                     {"shards_added", generation - before}});
            version = map->version();
            return generation - before;
        } catch (const std::exception& e) {
            log.warn("cannot read the shard map; reading the shards in hand",
                     {{"error", e.what()}});
            return std::nullopt;
        }
    }

    // Adds `location` unless it is here; under `mutex`.
    void add(const eventstore::ShardLocation& location) {
        if (std::any_of(sources.begin(), sources.end(),
                        [&](const auto& s) { return s.shard == location.id; })) {
            return;
        }
        const auto url = eventstore::shard_url(options.url, location);
        platform::pg::Pool* pool = home;
        if (url != options.url) {
            auto pool_options = options.pool;
            pool_options.url = url;
            pool_options.name = options.pool.name + "-shard" + std::to_string(location.id);
            pool_options.preparers.push_back(&eventstore::EventStore::prepare_reader);
            auto made = std::make_unique<platform::pg::Pool>(std::move(pool_options));
            if (registry) made->register_metrics(*registry);
            pool = made.get();
            pools.emplace(location.id, std::move(made));
        }
        sources.push_back({location.id, pool, url});
        std::sort(sources.begin(), sources.end(),
                  [](const auto& a, const auto& b) { return a.shard < b.shard; });
        ++generation;
    }
};

ShardSources::ShardSources(std::vector<ShardSource> fixed) : impl_{std::make_unique<Impl>()} {
    std::sort(fixed.begin(), fixed.end(),
              [](const auto& a, const auto& b) { return a.shard < b.shard; });
    if (fixed.empty() || std::adjacent_find(fixed.begin(), fixed.end(), [](auto& a, auto& b) {
                             return a.shard == b.shard;
                         }) != fixed.end()) {
        throw std::invalid_argument("the events API reads one shard or more, each once");
    }
    for (const auto& source : fixed) {
        if (source.pool == nullptr) throw std::invalid_argument("a source without a pool");
        if (source.shard < 0 || source.shard >= eventstore::kMaxShards) {
            throw std::invalid_argument("a shard id outside 0.." +
                                        std::to_string(eventstore::kMaxShards - 1));
        }
    }
    impl_->sources = std::move(fixed);
}

ShardSources::ShardSources(platform::pg::Pool& home, const eventstore::ShardMap& map,
                           Options options, platform::Logger log,
                           platform::metrics::Registry* registry)
    : impl_{std::make_unique<Impl>()} {
    impl_->home = &home;
    impl_->options = std::move(options);
    impl_->log = std::move(log);
    impl_->registry = registry;
    impl_->version = map.version();
    for (const auto& location : map.shards()) impl_->add(location);
    if (impl_->sources.empty()) throw std::invalid_argument("a shard map without shards");
    if (impl_->options.refresh_every.count() > 0) {
        impl_->refresher = std::thread{[this] {
            std::unique_lock lock{impl_->stop_mutex};
            while (!impl_->stop_cv.wait_for(lock, impl_->options.refresh_every,
                                            [this] { return impl_->stopping; })) {
                lock.unlock();
                refresh();  // every failure is caught and logged, and tried again next time
                lock.lock();
            }
        }};
    }
}

ShardSources::~ShardSources() {
    {
        std::lock_guard lock{impl_->stop_mutex};
        impl_->stopping = true;
    }
    impl_->stop_cv.notify_all();
    if (impl_->refresher.joinable()) impl_->refresher.join();
}

std::vector<ShardSource> ShardSources::current() const {
    std::lock_guard lock{impl_->mutex};
    return impl_->sources;
}

std::uint64_t ShardSources::generation() const {
    std::lock_guard lock{impl_->mutex};
    return impl_->generation;
}

bool ShardSources::refresh() {
    if (impl_->home == nullptr) return false;
    // One read for every caller that asked before it began, and none answered from a read
    // that began before it asked.
    const auto asked = std::chrono::steady_clock::now();
    std::lock_guard reading{impl_->refresh_mutex};
    if (impl_->last_read >= asked) return false;
    return impl_->read_map().value_or(0) > 0;
}

ShardSources::Named ShardSources::confirm(const std::vector<int>& shards) {
    if (impl_->has(shards)) return Named::known;
    if (impl_->home == nullptr) return Named::unknown;
    std::unique_lock reading{impl_->refresh_mutex, std::try_to_lock};
    if (!reading.owns_lock()) return Named::unsure;
    if (impl_->last_read != std::chrono::steady_clock::time_point{} &&
        std::chrono::steady_clock::now() - impl_->last_read < impl_->options.confirm_every) {
        return impl_->has(shards) ? Named::known : Named::unsure;
    }
    if (!impl_->read_map()) return Named::unsure;
    return impl_->has(shards) ? Named::known : Named::unknown;
}

}  // namespace ordo::query
