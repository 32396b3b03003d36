// Every PostgreSQL advisory lock Ordo takes, in one registry, so that no two purposes can
// ever share a key.
#pragma once

#include <cstdint>
#include <string_view>

namespace ordo::platform::pg::advisory_locks {

// PostgreSQL keeps the one-bigint form (pg_advisory_lock(bigint)) and the two-int form
// (pg_advisory_lock(int, int)) apart, so a key of one never meets a key of the other. Within
// each form every purpose below has keys of its own:
//
// One-bigint form.
//   migrations            kMigrations: the migrator, while it applies migrations.
//   rebuild(projection)   `ordo rebuild` of one projection; in [0, 2^32), below kMigrations.
// Two-int form: (purpose, instance).
//   (kRelayLeader, shard)              the relay leader of a shard.
//   (kPartitionMove, partition)        `ordo shards move` of a partition.
//   (projection_slot(name), partition) the owner of a projection's slot; never one of the
//                                      keys above.
inline constexpr std::int64_t kMigrations = 0x6f72646f6d696772;  // "ordomigr"
inline constexpr int kRelayLeader = 0x72656c61;                  // "rela"
inline constexpr int kPartitionMove = 0x6d6f7665;                // "move"

std::int64_t rebuild(std::string_view projection);
int projection_slot(std::string_view projection);

}  // namespace ordo::platform::pg::advisory_locks
