// Group commit's queue: who leads, what a batch holds, and whose failure is whose. The batch
// runner here is a fake that records its batches and can be held open, so a test decides
// exactly which units queue behind a running batch.
#include "eventstore/group_commit.hpp"

#include <gtest/gtest.h>

#include <future>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eventstore/memory_store.hpp"
#include "platform/core/errors.hpp"

namespace ordo::eventstore {
namespace {

using namespace std::chrono_literals;

// A batch runner that runs units on a MemoryStore session, records which units each batch
// held (by the names their work appends), and can hold its first batch until released.
class Batches {
   public:
    GroupCommit::Runner runner() {
        return [this](std::vector<GroupCommit::Unit*>& batch, GroupCommit::Deadline) {
            if (hold_first_) {
                hold_first_ = false;
                held_.set_value();
                release_.get_future().wait();
            }
            std::vector<std::string> names;
            store_.transact([&](Session& session) {
                for (auto* unit : batch) {
                    try {
                        (*unit->work)(session);
                    } catch (...) {
                        unit->error = std::current_exception();
                    }
                    names.push_back(last_name_);
                    if (on_unit_) on_unit_(*unit);
                }
            });
            std::lock_guard lock{mutex_};
            if (fail_batch_) {
                fail_batch_ = false;
                throw std::runtime_error("the commit failed");
            }
            seen_.push_back(names);
        };
    }

    // The first batch waits in the runner until release(); held() is ready once it does.
    void hold_first() { hold_first_ = true; }
    std::future<void> held() { return held_.get_future(); }
    void release() { release_.set_value(); }
    void fail_next_batch() { fail_batch_ = true; }
    void on_unit(std::function<void(GroupCommit::Unit&)> f) { on_unit_ = std::move(f); }

    // Work that names itself (and fails when `fails`).
    GroupCommit::Work work(std::string name, bool fails = false) {
        return [this, name, fails](Session&) {
            last_name_ = name;
            if (fails) throw std::invalid_argument(name + " refused");
        };
    }

    std::vector<std::vector<std::string>> seen() {
        std::lock_guard lock{mutex_};
        return seen_;
    }

   private:
    MemoryStore store_;
    std::mutex mutex_;
    std::vector<std::vector<std::string>> seen_;
    std::string last_name_;
    bool hold_first_ = false;
    bool fail_batch_ = false;
    std::promise<void> held_;
    std::promise<void> release_;
    std::function<void(GroupCommit::Unit&)> on_unit_;
};

GroupCommit::Deadline in(std::chrono::milliseconds d) {
    return std::chrono::steady_clock::now() + d;
}

// Waits (without a fixed sleep) until `count` units are queued.
void until_queued(const GroupCommit& group, std::size_t count) {
    while (group.queued() < count) std::this_thread::yield();
}

TEST(GroupCommit, ALoneUnitIsABatchOfOneAndWaitsForNothing) {
    Batches batches;
    GroupCommit group{{.max_batch = 8, .max_in_flight = 1}, batches.runner()};
    auto a = batches.work("a");
    group.run(in(1s), a);
    EXPECT_EQ(batches.seen(), (std::vector<std::vector<std::string>>{{"a"}}));
    EXPECT_EQ(group.stats().largest, 1u);
}

// Units run on threads of their own. start() returns once the unit has queued, so arrival
// order is start order. Works stay where they are (a unit holds a pointer to its work).
struct Runs {
    static constexpr std::size_t kMost = 32;
    GroupCommit& group;
    Batches& batches;
    std::vector<GroupCommit::Work> works;
    std::vector<std::future<void>> done;

    Runs(GroupCommit& g, Batches& b) : group{g}, batches{b} { works.reserve(kMost); }

    void start(const std::string& name, bool fails = false,
               std::chrono::milliseconds deadline = 5s) {
        ASSERT_LT(works.size(), kMost);
        works.push_back(batches.work(name, fails));
        const auto before = group.queued();
        auto& work = works.back();
        done.push_back(std::async(std::launch::async,
                                  [this, &work, deadline] { group.run(in(deadline), work); }));
        until_queued(group, before + 1);
    }
};

// A group whose first batch ("first", alone) is running and held in the runner: with one
// slot, the units started next queue behind it until release().
struct HeldGroup {
    explicit HeldGroup(GroupCommit::Options options) : group{options, batches.runner()} {
        batches.hold_first();
        auto held = batches.held();
        first = std::async(std::launch::async, [this] { group.run(in(5s), first_work); });
        held.wait();
    }
    void release() { batches.release(); }

    Batches batches;
    GroupCommit group;
    Runs runs{group, batches};
    GroupCommit::Work first_work = batches.work("first");
    std::future<void> first;
};

using Seen = std::vector<std::vector<std::string>>;

TEST(GroupCommit, UnitsThatQueueBehindABusySlotShareTheNextBatchInArrivalOrder) {
    HeldGroup g{{.max_batch = 8, .max_in_flight = 1}};
    for (auto name : {"b", "c", "d"}) g.runs.start(name);
    g.release();
    g.first.get();
    for (auto& d : g.runs.done) d.get();
    EXPECT_EQ(g.batches.seen(), (Seen{{"first"}, {"b", "c", "d"}}));
}

TEST(GroupCommit, ABatchHoldsAtMostMaxBatchUnits) {
    HeldGroup g{{.max_batch = 2, .max_in_flight = 1}};
    for (auto name : {"b", "c", "d", "e", "f"}) g.runs.start(name);
    g.release();
    g.first.get();
    for (auto& d : g.runs.done) d.get();
    EXPECT_EQ(g.batches.seen(), (Seen{{"first"}, {"b", "c"}, {"d", "e"}, {"f"}}));
    EXPECT_EQ(g.group.stats().batches, 4u);
    EXPECT_EQ(g.group.stats().units, 6u);
}

TEST(GroupCommit, AUnitThatFailsFailsAloneAndTheOthersCommit) {
    HeldGroup g{{.max_batch = 8, .max_in_flight = 1}};
    g.runs.start("b");
    g.runs.start("c", /*fails=*/true);
    g.runs.start("d");
    g.release();
    g.first.get();
    EXPECT_NO_THROW(g.runs.done[0].get());
    EXPECT_THROW(g.runs.done[1].get(), std::invalid_argument);
    EXPECT_NO_THROW(g.runs.done[2].get());
    EXPECT_EQ(g.batches.seen(), (Seen{{"first"}, {"b", "c", "d"}}));
}

TEST(GroupCommit, ABatchThatFailsAsAWholeFailsEveryUnitThatHadNotFailedAlone) {
    HeldGroup g{{.max_batch = 8, .max_in_flight = 1}};
    g.runs.start("b");
    g.runs.start("c", /*fails=*/true);
    g.batches.fail_next_batch();  // the first batch's commit fails
    g.release();
    EXPECT_THROW(g.first.get(), std::runtime_error);
    EXPECT_NO_THROW(g.runs.done[0].get());  // b and c ran in the second batch, which committed
    EXPECT_THROW(g.runs.done[1].get(), std::invalid_argument);
    // A failed batch with a unit that failed alone: that unit keeps its own error.
    g.batches.fail_next_batch();
    auto e = g.batches.work("e", /*fails=*/true);
    EXPECT_THROW(g.group.run(in(1s), e), std::invalid_argument);
    g.batches.fail_next_batch();
    auto f = g.batches.work("f");
    EXPECT_THROW(g.group.run(in(1s), f), std::runtime_error);
}

TEST(GroupCommit, AUnitAskedToRetryRunsOnceMoreAloneThenFailsWithItsError) {
    HeldGroup g{{.max_batch = 8, .max_in_flight = 1}};
    int asks = 1;  // b, the first unit after the first batch, is asked to retry once
    g.batches.on_unit([&](GroupCommit::Unit& unit) {
        if (asks > 0 && unit.work == &g.runs.works[0]) {
            --asks;
            unit.error = std::make_exception_ptr(std::runtime_error("lock wait"));
            unit.retry = true;
        }
    });
    for (auto name : {"b", "c", "d"}) g.runs.start(name);
    g.release();
    g.first.get();
    for (auto& d : g.runs.done) EXPECT_NO_THROW(d.get());
    // b ran again in a batch of its own, before anything queued after it.
    EXPECT_EQ(g.batches.seen(), (Seen{{"first"}, {"b", "c", "d"}, {"b"}}));

    // Asked every time: the second ask is final.
    g.batches.on_unit([&](GroupCommit::Unit& unit) {
        unit.error = std::make_exception_ptr(std::runtime_error("deadlock"));
        unit.retry = true;
    });
    auto e = g.batches.work("e");
    EXPECT_THROW(g.group.run(in(1s), e), std::runtime_error);
    EXPECT_EQ(g.batches.seen().size(), 5u);
}

TEST(GroupCommit, AUnitStillQueuedAtItsDeadlineIsOverloadedAndNeverRuns) {
    HeldGroup g{{.max_batch = 8, .max_in_flight = 1}};
    auto late = g.batches.work("late");
    // The slot stays busy until after this returns: the deadline passes in the queue.
    EXPECT_THROW(g.group.run(in(20ms), late), platform::Overloaded);
    EXPECT_EQ(g.group.queued(), 0u);
    g.release();
    g.first.get();
    EXPECT_EQ(g.batches.seen(), (Seen{{"first"}}));
}

TEST(GroupCommit, TheQueueIsBounded) {
    HeldGroup g{{.max_batch = 8, .max_in_flight = 1, .max_queued = 1}};
    g.runs.start("b");
    auto c = g.batches.work("c");
    EXPECT_THROW(g.group.run(in(5s), c), platform::Overloaded);
    g.release();
    g.first.get();
    g.runs.done[0].get();
    EXPECT_EQ(g.batches.seen(), (Seen{{"first"}, {"b"}}));
}

TEST(GroupCommit, BatchesRunSideBySideUpToMaxInFlight) {
    HeldGroup g{{.max_batch = 8, .max_in_flight = 2}};
    // One slot is still free: this unit leads a batch of its own at once, while the first
    // batch is held.
    auto b = g.batches.work("b");
    g.group.run(in(5s), b);
    EXPECT_EQ(g.batches.seen(), (Seen{{"b"}}));
    g.release();
    g.first.get();
}

}  // namespace
}  // namespace ordo::eventstore
