// The balancing arithmetic of slot leases: each instance's fair share, and which slots it
// takes or gives back to reach it.

#include <gtest/gtest.h>

#include <set>

#include "projections/slot_leases.hpp"

namespace ordo::projections {
namespace {

auto always = [](std::size_t) { return true; };

TEST(SlotBalance, FairShareRoundsUpSoThatTheInstancesHoldEverySlot) {
    EXPECT_EQ(fair_share(64, 1), 64U);
    EXPECT_EQ(fair_share(64, 2), 32U);
    EXPECT_EQ(fair_share(64, 3), 22U);  // 3 x 22 >= 64
    EXPECT_EQ(fair_share(5, 10), 1U);
    EXPECT_EQ(fair_share(0, 3), 0U);
    EXPECT_EQ(fair_share(8, 0), 8U);  // counts itself at least
}

TEST(SlotBalance, SearchStartIsStablePerInstanceAndWithinTheSlots) {
    EXPECT_EQ(search_start("a", 16), search_start("a", 16));
    EXPECT_LT(search_start("a", 16), 16U);
    EXPECT_EQ(search_start("a", 0), 0U);
    std::set<std::size_t> starts;
    for (auto name : {"p1", "p2", "p3", "p4", "p5", "p6"}) starts.insert(search_start(name, 64));
    EXPECT_GT(starts.size(), 1U);  // instances do not all begin at the same slot
}

TEST(SlotBalance, ALoneInstanceTakesEverySlotFromItsStartOn) {
    auto moves = rebalance(std::vector<bool>(4, false), 4, 2, always);
    EXPECT_EQ(moves.taken, (std::vector<std::size_t>{2, 3, 0, 1}));
    EXPECT_TRUE(moves.released.empty());
}

TEST(SlotBalance, TakesOnlyUpToItsShareAndPassesOverLockedSlots) {
    // Slots 1 and 2 are held by another instance: their locks refuse.
    auto moves = rebalance(std::vector<bool>(6, false), 3, 0,
                           [](std::size_t i) { return i != 1 && i != 2; });
    EXPECT_EQ(moves.taken, (std::vector<std::size_t>{0, 3, 4}));
    EXPECT_TRUE(moves.released.empty());
}

TEST(SlotBalance, AsksNoLockOnceTheShareIsHeld) {
    std::vector<std::size_t> asked;
    auto moves = rebalance({true, true, false, false}, 2, 0, [&](std::size_t i) {
        asked.push_back(i);
        return true;
    });
    EXPECT_TRUE(asked.empty());
    EXPECT_TRUE(moves.taken.empty());
    EXPECT_TRUE(moves.released.empty());
}

TEST(SlotBalance, GivesBackTheSurplusGoingBackwardsFromItsStart) {
    // A second instance appeared: the share fell from 6 to 3.
    auto moves = rebalance(std::vector<bool>(6, true), 3, 2, always);
    EXPECT_TRUE(moves.taken.empty());
    EXPECT_EQ(moves.released, (std::vector<std::size_t>{1, 0, 5}));
}

TEST(SlotBalance, TakesWhatTheLocksAllowWhenShortOfItsShare) {
    auto moves = rebalance({true, false, false, false}, 3, 0, [](std::size_t i) { return i == 3; });
    EXPECT_EQ(moves.taken, (std::vector<std::size_t>{3}));
    EXPECT_TRUE(moves.released.empty());
}

TEST(SlotBalance, NoSlotsNoMoves) {
    auto moves = rebalance({}, 0, 0, always);
    EXPECT_TRUE(moves.taken.empty());
    EXPECT_TRUE(moves.released.empty());
}

}  // namespace
}  // namespace ordo::projections
