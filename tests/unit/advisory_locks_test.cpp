// The advisory-lock registry: every purpose keeps to keys of its own, and the keys are the
// ones earlier releases took (a projector of the previous release and one of this must
// contend for the same slot during a rolling upgrade).
#include "platform/pg/advisory_locks.hpp"

#include <gtest/gtest.h>

#include <set>
#include <string>

#include "platform/core/partition.hpp"
#include "projections/read_models.hpp"

namespace ordo::platform::pg::advisory_locks {
namespace {

std::vector<std::string> projection_names() {
    std::vector<std::string> names{"sagas", "sagas.intake"};
    for (const auto& p : projections::read_models()) names.push_back(p->name());
    return names;
}

TEST(AdvisoryLocks, EveryProjectionHasASlotKeyOfItsOwnApartFromTheRelays) {
    std::set<int> keys;
    for (const auto& name : projection_names()) {
        const auto key = projection_slot(name);
        EXPECT_NE(key, kRelayLeader) << name;
        EXPECT_NE(key, kPartitionMove) << name;
        EXPECT_GE(key, 0) << name;
        EXPECT_TRUE(keys.insert(key).second) << name << " shares its slot key";
    }
    EXPECT_EQ(keys.size(), 6U);
}

TEST(AdvisoryLocks, RebuildKeysStayBelowTheMigratorsAndDifferByProjection) {
    std::set<std::int64_t> keys;
    for (const auto& name : projection_names()) {
        const auto key = rebuild(name);
        EXPECT_LT(key, kMigrations) << name;
        EXPECT_TRUE(keys.insert(key).second) << name;
    }
}

TEST(AdvisoryLocks, KeysAreTheOnesEarlierReleasesTook) {
    EXPECT_EQ(kMigrations, 0x6f72646f6d696772);
    EXPECT_EQ(kRelayLeader, 0x72656c61);
    EXPECT_EQ(kPartitionMove, 0x6d6f7665);
    for (const auto& name : projection_names()) {
        EXPECT_EQ(projection_slot(name),
                  static_cast<int>(stream_hash("ordo.projection." + name) & 0x7fffffff));
        EXPECT_EQ(rebuild(name), static_cast<std::int64_t>(stream_hash("ordo.rebuild." + name)));
    }
}

}  // namespace
}  // namespace ordo::platform::pg::advisory_locks
