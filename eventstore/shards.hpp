// The stores of a deployment, one per shard, and which one holds a stream.
#pragma once

// Everything of a stream (its events, row, snapshots, and the command-log rows of commands on
// it) lives on one shard, the owner of its partition (shard_map.hpp); so does each unit of
// work, which touches one stream. Callers that act on a stream ask for its store and use it
// as before; a Store's reads in commit order (read_all) are of its own shard only, since
// commit order and checkpoints are per database.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "eventstore/store.hpp"

namespace ordo::eventstore {

class Shards {
   public:
    virtual ~Shards() = default;
    // The store of the shard that owns `stream`'s partition.
    virtual Store& of(const std::string& stream) = 0;
    // Every shard's store, for what spans them all (expiring old command-log keys).
    virtual std::vector<Store*> all() = 0;
    // The id of the shard that owns `stream`, by a written map; nullopt for a store that is
    // not sharded (its positions name no shard).
    virtual std::optional<int> shard_id(const std::string& stream) const = 0;
    // Reads the map again: true when this call put a newer one in force (a partition moved).
    // For a caller whose write was refused as PartitionFenced, who then asks of() again; a
    // store that is not sharded has nothing to read.
    virtual bool refresh() { return false; }

    // EventReader::read_streams over the shards: each shard's streams in one call of its
    // store. Results in the order asked.
    std::vector<std::vector<RecordedEvent>> read_streams(const std::vector<StreamFrom>& streams,
                                                         std::size_t max_count);
};

// One store for everything: an unsharded deployment, and the runtimes' unit tests.
class OneShard final : public Shards {
   public:
    explicit OneShard(Store& store) : store_{store} {}
    Store& of(const std::string&) override { return store_; }
    std::vector<Store*> all() override { return {&store_}; }
    std::optional<int> shard_id(const std::string&) const override { return std::nullopt; }

   private:
    Store& store_;
};

}  // namespace ordo::eventstore
