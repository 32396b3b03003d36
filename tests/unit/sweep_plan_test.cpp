// The sweep's plan: which owned slots are stepped, moved up to the head, or passed over.

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "projections/sweep_plan.hpp"

namespace ordo::projections {
namespace {

class Named final : public Projection {
   public:
    explicit Named(std::string name) : name_{std::move(name)} {}
    std::string name() const override { return name_; }
    std::vector<std::string> categories() const override { return {}; }
    void apply(ReadModelTxn&, const eventstore::RecordedEvent&) override {}

   private:
    std::string name_;
};

const auto kNow = std::chrono::steady_clock::now();

class SweepPlanTest : public ::testing::Test {
   protected:
    Named inventory{"inventory"};

    // An owned slot caught up at `at`, its row holding what it saved.
    Slot idle_at(int partition, Checkpoint at, ShardKey shard = {}) {
        Slot s{&inventory, partition, 100};
        s.owned = true;
        s.idle = true;
        s.settle_pending = false;
        s.at = at;
        s.shard = shard;
        rows.push_back({"inventory", partition, at, shard});
        return s;
    }

    std::vector<CheckpointRow> rows;
};

TEST_F(SweepPlanTest, IdleSlotsAtTheHeadOfAnIdleStoreAreNeitherSteppedNorMoved) {
    std::vector<Slot> slots{idle_at(0, {10, 5}), idle_at(1, {10, 5})};
    const auto points = survey_points(slots, rows);
    ASSERT_EQ(points.size(), 1U);
    EXPECT_EQ(points.at(ShardKey{}), (Checkpoint{10, 5}));

    // Nothing after the survey point.
    const auto plan = plan_sweep(slots, rows, {{ShardKey{}, Changes{}}}, kNow);
    EXPECT_TRUE(plan.visit.empty());
    EXPECT_TRUE(plan.advance.empty());
}

TEST_F(SweepPlanTest, SlotsWithEventsAfterThemAreSteppedAndTheOthersMoveUpToTheHead) {
    std::vector<Slot> slots{idle_at(0, {10, 5}), idle_at(1, {10, 5}), idle_at(2, {11, 7})};
    // The survey point is the lowest; partition 1 has events after it.
    EXPECT_EQ(survey_points(slots, rows).at(ShardKey{}), (Checkpoint{10, 5}));
    Changes changes{.partitions = {1}, .head = Checkpoint{12, 9}, .complete = true};
    const auto plan = plan_sweep(slots, rows, {{ShardKey{}, changes}}, kNow);
    EXPECT_EQ(plan.visit, (std::vector<std::size_t>{1}));
    EXPECT_EQ(plan.advance, (std::vector<std::size_t>{0, 2}));
    EXPECT_EQ(plan.heads.at(ShardKey{}), (Checkpoint{12, 9}));
}

TEST_F(SweepPlanTest, ASurveyThatSawOnlyPartOfTheChangesStepsEverySlot) {
    std::vector<Slot> slots{idle_at(0, {10, 5}), idle_at(1, {10, 5})};
    Changes changes{.partitions = {1}, .head = Checkpoint{12, 9}, .complete = false};
    const auto plan = plan_sweep(slots, rows, {{ShardKey{}, changes}}, kNow);
    EXPECT_EQ(plan.visit, (std::vector<std::size_t>{0, 1}));
    EXPECT_TRUE(plan.advance.empty());
}

TEST_F(SweepPlanTest, ASlotThatMayHaveWorkIsSteppedWhateverTheSurveySays) {
    std::vector<Slot> slots;
    // Never stepped in this ownership: not known to be caught up.
    auto fresh = idle_at(0, {10, 5});
    fresh.idle = false;
    slots.push_back(fresh);
    // Its dead letters are due a look (first visit once owned, parked one, operator asked).
    auto letters = idle_at(1, {10, 5});
    letters.settle_pending = true;
    slots.push_back(letters);
    // Its row no longer holds what it saved: a move rebased it, or another owner moved it.
    auto rebased = idle_at(2, {10, 5});
    rows.back().at = {3, 1};
    slots.push_back(rebased);
    // Its row names another shard than the slot knows.
    auto moved = idle_at(3, {10, 5}, 0);
    rows.back().shard = 1;
    slots.push_back(moved);
    // No row at all.
    Slot rowless{&inventory, 4, 100};
    rowless.owned = true;
    rowless.idle = true;
    rowless.settle_pending = false;
    slots.push_back(rowless);
    // Its last batch failed.
    auto failing = idle_at(5, {10, 5});
    failing.failures = 1;
    slots.push_back(failing);

    EXPECT_TRUE(survey_points(slots, rows).empty());
    const auto plan = plan_sweep(slots, rows, {}, kNow);
    EXPECT_EQ(plan.visit, (std::vector<std::size_t>{0, 1, 2, 3, 4, 5}));
    EXPECT_TRUE(plan.advance.empty());
}

TEST_F(SweepPlanTest, UnownedSlotsAndSlotsWaitingToRetryAreLeftAlone) {
    auto unowned = idle_at(0, {10, 5});
    unowned.owned = false;
    unowned.idle = false;
    auto waiting = idle_at(1, {10, 5});
    waiting.idle = false;
    waiting.retry_at = kNow + std::chrono::seconds(1);
    std::vector<Slot> slots{unowned, waiting};
    const auto plan = plan_sweep(slots, rows, {}, kNow);
    EXPECT_TRUE(plan.visit.empty());
    EXPECT_TRUE(plan.advance.empty());
}

TEST_F(SweepPlanTest, AHaltedSlotIsNeverMovedAndSteppedOnlyWhenItsLettersAreDue) {
    auto halted = idle_at(0, {10, 5});
    halted.halted_on = 7;
    std::vector<Slot> slots{halted, idle_at(1, {11, 6})};
    // Its events wait behind the letter: its checkpoint must stay before it, and is not what
    // the survey asks about.
    EXPECT_EQ(survey_points(slots, rows).at(ShardKey{}), (Checkpoint{11, 6}));
    Changes changes{.partitions = {0}, .head = Checkpoint{12, 9}, .complete = true};
    auto plan = plan_sweep(slots, rows, {{ShardKey{}, changes}}, kNow);
    EXPECT_TRUE(plan.visit.empty());
    EXPECT_EQ(plan.advance, (std::vector<std::size_t>{1}));

    // An operator asked: the runtime marks its letters due, and it is stepped (settled).
    slots[0].settle_pending = true;
    plan = plan_sweep(slots, rows, {{ShardKey{}, changes}}, kNow);
    EXPECT_EQ(plan.visit, (std::vector<std::size_t>{0}));
}

TEST_F(SweepPlanTest, ASlotWhoseBreakerIsNotClosedIsSteppedNeverMoved) {
    // Its breaker decides whether it is touched (refused: it stays at its checkpoint; a
    // probe: a step), so the survey neither passes over it nor moves it.
    std::vector<Slot> slots{idle_at(0, {10, 5}), idle_at(1, {10, 5})};
    Changes changes{.partitions = {}, .head = Checkpoint{12, 9}, .complete = true};
    const auto plan = plan_sweep(slots, rows, {{ShardKey{}, changes}}, kNow, {"inventory"});
    EXPECT_EQ(plan.visit, (std::vector<std::size_t>{0, 1}));
    EXPECT_TRUE(plan.advance.empty());
}

TEST_F(SweepPlanTest, EachShardIsSurveyedAfterItsOwnLowestCheckpoint) {
    std::vector<Slot> slots{idle_at(0, {900, 40}, 0), idle_at(1, {800, 41}, 0),
                            idle_at(2, {30, 2}, 1), idle_at(3, {35, 3}, 1)};
    const auto points = survey_points(slots, rows);
    ASSERT_EQ(points.size(), 2U);
    EXPECT_EQ(points.at(0), (Checkpoint{800, 41}));
    EXPECT_EQ(points.at(1), (Checkpoint{30, 2}));

    // Shard 0 moved on; shard 1's survey could not be read.
    std::map<ShardKey, Changes> changes{
        {0, Changes{.partitions = {}, .head = Checkpoint{950, 60}, .complete = true}},
        {1, Changes{.complete = false}}};
    const auto plan = plan_sweep(slots, rows, changes, kNow);
    EXPECT_EQ(plan.visit, (std::vector<std::size_t>{2, 3}));
    EXPECT_EQ(plan.advance, (std::vector<std::size_t>{0, 1}));
    EXPECT_EQ(plan.heads.at(0), (Checkpoint{950, 60}));
    EXPECT_EQ(plan.heads.count(1), 0U);
}

TEST_F(SweepPlanTest, ASlotAheadOfTheSurveyPointIsAtTheHeadWhenNothingCameAfterIt) {
    // The survey point is the lowest checkpoint; a slot above it with no change is at the
    // head already and stays where it is.
    std::vector<Slot> slots{idle_at(0, {10, 5}), idle_at(1, {12, 9})};
    Changes changes{.partitions = {}, .head = Checkpoint{12, 9}, .complete = true};
    const auto plan = plan_sweep(slots, rows, {{ShardKey{}, changes}}, kNow);
    EXPECT_TRUE(plan.visit.empty());
    EXPECT_EQ(plan.advance, (std::vector<std::size_t>{0}));
}

}  // namespace
}  // namespace ordo::projections
