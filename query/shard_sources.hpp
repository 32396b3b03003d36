// The shards the events API and its live subscriptions read: those of the shard map the query
// service started with, and each shard a newer map names since (a shard added, and a
// partition moved to it, while the service runs).
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "eventstore/shard_map.hpp"
#include "platform/core/log.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::query {

// One shard the events API reads.
struct ShardSource {
    int shard = 0;
    // Prepared with EventStore::prepare_reader; it lives as long as the ShardSources that
    // gave it.
    platform::pg::Pool* pool = nullptr;
    std::string listen_url;  // where its append notifications are listened for
};

// Thread-safe. The set only grows: a shard, once read, stays (as in PgShards), so a pointer
// to its pool stays good and a reader's position over the shards of an earlier set is a
// position over part of a later one (a shard it does not name starts at the beginning).
class ShardSources {
   public:
    struct Options {
        // The service's own database: the control database, which keeps the map, and the
        // shard of the map that is this database (shard 0 of `ordo dev --shards`).
        std::string url;
        // Each other shard's pool: `url` and `name` set per shard ("<name>-shard<id>"),
        // EventStore::prepare_reader added to its preparers.
        platform::pg::PoolOptions pool;
        // How often the map is read again, so that a shard added while the service runs is
        // read without a restart. Zero: only when refresh() is called.
        std::chrono::milliseconds refresh_every{1000};
        // confirm() reads the map at most this often.
        std::chrono::milliseconds confirm_every{100};
    };

    // Sources that never change: a store that is not sharded, or a test's. Shard ids are
    // 0..kMaxShards-1, each once.
    explicit ShardSources(std::vector<ShardSource> fixed);
    // The shards of `map` (a written map, version 1 or later), and those of newer maps as
    // they come. `home` is the pool of options.url (prepared with
    // EventStore::prepare_reader): the shard that is that database reads through it, and the
    // map is read with it.
    ShardSources(platform::pg::Pool& home, const eventstore::ShardMap& map, Options options,
                 platform::Logger log, platform::metrics::Registry* registry = nullptr);
    ~ShardSources();
    ShardSources(const ShardSources&) = delete;
    ShardSources& operator=(const ShardSources&) = delete;

    // In shard order, each shard once; never empty.
    std::vector<ShardSource> current() const;
    // Changes each time a shard is added: compare it to know whether current() changed.
    std::uint64_t generation() const;
    // Reads the map now and adds the shards it names that are not here yet; true when one was
    // added. Callers that ask while a read is under way wait for the next one, which serves
    // them all. Sources that never change, and a map that cannot be read (logged), add
    // nothing.
    bool refresh();

    // Whether `shards` are all read, for a request whose position names them: `known` when
    // they are in hand; else the map is read on the request's thread and the answer is by
    // it (`unknown`: no map names them). `unsure` when it cannot say now: the map could not
    // be read, another read is under way (a request never waits behind one), or one began
    // less than `confirm_every` ago (positions a client makes up cost a map read that often
    // at most). Sources that never change answer known or unknown.
    enum class Named { known, unknown, unsure };
    Named confirm(const std::vector<int>& shards);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::query
