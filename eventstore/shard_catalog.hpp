// The shard map as the control database keeps it (migration 0016): read by every service at
// start, written by `ordo shards`.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "eventstore/shard_map.hpp"

namespace pqxx {
class transaction_base;
}

namespace ordo::eventstore {

// The map in force, or nullopt when the database has none written (it is a store of one
// shard: itself). Any role of a service may call it.
std::optional<ShardMap> read_shard_map(pqxx::transaction_base& txn);

// The map a service routes by: the written one, or the implicit one-shard map of
// `partitions`. Throws PartitionCountMismatch when a written map has another partition count
// than the service was started with; `partitions` 0 (a service that has no count of its own)
// takes the written map as it is, or the default count's implicit one.
ShardMap shard_map_for(pqxx::transaction_base& txn, int partitions);

// Writes `map` as the first map of a new sharded store (its version must be 1), with its
// shards' locations, as the control database's owner. Throws platform::InvalidInput when a
// map is written already: a written map changes only by moving partitions.
void write_first_map(pqxx::transaction_base& txn, const ShardMap& map);

// The location of shard `id` as registered in the control database (a shard may be
// registered and own no partition yet), or nullopt. The migrator and the relay may ask
// (ordo.registered_shard, migration 0018).
std::optional<ShardLocation> registered_shard(pqxx::transaction_base& txn, int id);

// Every registered shard, in the order of their ids: those of the map, and those added (or
// emptied by moves) that own no partition.
std::vector<ShardLocation> registered_shards(pqxx::transaction_base& txn);

// Whether `shard` is new to a written map: true when neither its id nor its location is
// registered, false when it is registered already (the same id at the same location).
// Throws platform::InvalidInput when no map is written, or when the id is registered at
// another location or the location under another id. Reads only.
bool new_shard(pqxx::transaction_base& txn, const ShardLocation& shard);

// Registers `shard` with a written map, owning no partition until a move gives it one
// (`ordo shards add`), after new_shard's checks under the map's lock; registered already, it
// changes nothing. Serialized with every other writer of the map.
void register_shard(pqxx::transaction_base& txn, const ShardLocation& shard);

// Writes the next version of the map, the same but for `partition`, which goes to shard `to`
// (registered); returns it. Serialized with every other writer of the map. Throws
// platform::InvalidInput when no map is written or the result breaks a map's invariants.
ShardMap write_moved_map(pqxx::transaction_base& txn, int partition, int to);

// What a shard holds of the partitions the map says it must not: (partition, events) for each
// such partition, on the shard's own database. A first map may only be written over shards
// that hold none, so that no stream is left on a shard that no longer routes to it.
std::vector<std::pair<int, std::int64_t>> foreign_partitions(pqxx::transaction_base& shard_txn,
                                                             const ShardMap& map, int shard);

}  // namespace ordo::eventstore
