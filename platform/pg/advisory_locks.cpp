// The keys of the advisory-lock registry (see advisory_locks.hpp): fixed constants, and
// hashes of projection names kept clear of them.
#include "platform/pg/advisory_locks.hpp"

#include <string>

#include "platform/core/partition.hpp"

namespace ordo::platform::pg::advisory_locks {

static_assert(kMigrations > 0xffffffffLL, "rebuild keys lie below 2^32 and must not reach it");

std::int64_t rebuild(std::string_view projection) {
    return static_cast<std::int64_t>(stream_hash("ordo.rebuild." + std::string{projection}));
}

int projection_slot(std::string_view projection) {
    auto key =
        static_cast<int>(stream_hash("ordo.projection." + std::string{projection}) & 0x7fffffff);
    return key == kRelayLeader || key == kPartitionMove ? key + 1 : key;
}

}  // namespace ordo::platform::pg::advisory_locks
