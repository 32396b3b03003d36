// The projection runtime on the in-memory store and slot store: given events in the store and
// a read model kept in memory, when runtimes run, then each event takes effect exactly once
// with the checkpoint, poison events are parked by policy and settled by operators, transient
// failures are retried without loss or repeats, and runtimes share the slots fairly.
#include <gtest/gtest.h>

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "eventstore/memory_store.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "projections/memory_slot_store.hpp"
#include "projections/runtime.hpp"
#include "tests/support/conditions.hpp"

namespace ordo::projections {
namespace {

using namespace std::chrono_literals;
using ordo::testing::eventually;

constexpr int kPartitions = 4;

// A read model kept in memory: how often each event took effect, in the order they did.
// Its changes go through on_commit, so they count only when the checkpoint moves with them.
// It refuses for good the receipts of `poison` quantity, and fails transiently (as a lost
// connection) `transient` times, until told otherwise.
class Ledger final : public Projection {
   public:
    std::string name() const override { return "ledger"; }
    std::vector<std::string> categories() const override { return {"inventory"}; }

    void apply(ReadModelTxn& txn, const eventstore::RecordedEvent& event) override {
        if (transient > 0) {
            --transient;
            throw platform::Unavailable("the ledger's database is gone for a moment");
        }
        if (refuse_all) throw std::runtime_error("the ledger refuses every event");
        if (event.payload.at("quantity").get<int>() == poison) {
            throw std::runtime_error("cannot apply a receipt of " + std::to_string(poison.load()));
        }
        txn.on_commit([this, id = event.event_id, stream = event.stream_id] {
            std::lock_guard lock{mutex_};
            ++applied_[id];
            order_[stream].push_back(id);
        });
    }

    int times(const std::string& event_id) {
        std::lock_guard lock{mutex_};
        auto it = applied_.find(event_id);
        return it == applied_.end() ? 0 : it->second;
    }
    std::size_t distinct() {
        std::lock_guard lock{mutex_};
        return applied_.size();
    }
    bool each_once() {
        std::lock_guard lock{mutex_};
        for (const auto& [id, n] : applied_) {
            if (n != 1) return false;
        }
        return true;
    }
    std::vector<std::string> order_of(const std::string& stream) {
        std::lock_guard lock{mutex_};
        return order_[stream];
    }

    std::atomic<int> poison{-1};
    std::atomic<int> transient{0};
    std::atomic<bool> refuse_all{false};

   private:
    std::mutex mutex_;
    std::map<std::string, int> applied_;
    std::map<std::string, std::vector<std::string>> order_;
};

class ProjectionRuntime : public ::testing::Test {
   protected:
    // Receipts of `quantity` on `sku`; the events' ids.
    std::vector<std::string> receive(const std::string& sku, std::vector<int> quantities) {
        std::vector<eventstore::NewEvent> batch;
        for (int q : quantities) {
            batch.push_back({ids.uuid_v4(), "StockReceived", {{"sku", sku}, {"quantity", q}}, {}});
        }
        store.append("inventory-" + sku, eventstore::ExpectedVersion::any(), batch);
        leases.notify();
        std::vector<std::string> out;
        for (const auto& e : batch) out.push_back(e.event_id);
        return out;
    }

    RuntimeOptions options(const std::string& instance) {
        RuntimeOptions o;
        o.partitions = kPartitions;
        o.batch = 3;  // several batches per partition
        o.poll_interval = 50ms;
        o.instance = instance;
        o.status_interval = 50ms;
        o.breaker.cool_down = 100ms;
        return o;
    }

    // A runtime of `ledger` on its own thread until the fixture ends or stop() is called.
    struct Running {
        std::unique_ptr<MemoryLeases> leases;
        std::unique_ptr<Runtime> runtime;
        std::atomic<bool> stop{false};
        std::thread thread;
        ~Running() { halt(); }
        void halt() {
            stop = true;
            if (thread.joinable()) thread.join();
        }
    };

    // On `store` (the fixture's slots unless given), with leases whose horizon probe asks
    // `hidden`.
    Running& start(std::unique_ptr<Projection> projection, RuntimeOptions o,
                   SlotStore* store = nullptr, std::function<bool()> hidden = {}) {
        auto& r = *running.emplace_back(std::make_unique<Running>());
        r.leases =
            std::make_unique<MemoryLeases>(leases, o.instance, o.poll_interval, std::move(hidden));
        std::vector<std::unique_ptr<Projection>> projections;
        projections.push_back(std::move(projection));
        r.runtime = std::make_unique<Runtime>(std::move(o), std::move(projections),
                                              platform::Logger::null_logger(), metrics,
                                              store ? *store : slots, *r.leases);
        if (on_committed) r.runtime->on_batch_committed(on_committed);
        r.thread = std::thread{[&r] { r.runtime->run(r.stop); }};
        return r;
    }

    Ledger& start_ledger(RuntimeOptions o) {
        auto ledger = std::make_unique<Ledger>();
        auto& ref = *ledger;
        start(std::move(ledger), std::move(o));
        return ref;
    }

    // A ledger that refuses receipts of 13, its dead letters under `policy`.
    Ledger& start_poisoned(DeadLetterPolicy policy) {
        auto o = options("p-1");
        o.dead_letter_policies = {{"ledger", policy}};
        auto ledger = std::make_unique<Ledger>();
        ledger->poison = 13;
        auto& ref = *ledger;
        start(std::move(ledger), std::move(o));
        return ref;
    }

    // The checkpoint of the partition of `stream` has reached its last event.
    bool caught_up(const std::string& stream) {
        const auto events = store.read_stream(stream, 1, 10'000);
        return !events.empty() &&
               slots.checkpoint("ledger", platform::partition_of(stream, kPartitions)) >=
                   events.back().checkpoint();
    }

    void TearDown() override { running.clear(); }

    platform::IdGenerator ids;
    eventstore::MemoryStore store;
    MemorySlotStore slots{store, kPartitions};
    MemoryLeaseTable leases;
    platform::metrics::Registry metrics;
    std::function<void()> on_committed;
    std::atomic<int> committed{0};
    std::vector<std::unique_ptr<Running>> running;
};

TEST(PollDeadline, WaitsCutShortDoNotPutThePollOffAndItClearsOncePassed) {
    PollDeadline poll;
    const auto t0 = std::chrono::steady_clock::time_point{} + 1h;
    EXPECT_EQ(poll.at_most(t0 + 500ms), t0 + 500ms);
    // Each later wait, cut short by a live event, proposes a deadline a poll interval on.
    EXPECT_EQ(poll.at_most(t0 + 100ms + 500ms), t0 + 500ms);
    EXPECT_FALSE(poll.passed(t0 + 499ms));
    EXPECT_EQ(poll.at_most(t0 + 499ms + 500ms), t0 + 500ms);
    EXPECT_TRUE(poll.passed(t0 + 500ms));
    // Cleared: the next wait sets a new one.
    EXPECT_FALSE(poll.passed(t0 + 501ms));
    EXPECT_EQ(poll.at_most(t0 + 501ms + 500ms), t0 + 1001ms);
    // An earlier candidate (events hidden by the horizon: look again soon) wins.
    EXPECT_EQ(poll.at_most(t0 + 506ms), t0 + 506ms);
}

TEST_F(ProjectionRuntime, AppliesEveryEventOfItsCategoriesOnceInStreamOrder) {
    // Given receipts on eight skus (spread over the partitions) and events of another category.
    std::map<std::string, std::vector<std::string>> written;
    for (int i = 0; i < 8; ++i) {
        const auto sku = "sku-" + std::to_string(i);
        written[sku] = receive(sku, {1, 2, 3, 4, 5, 6, 7});
    }
    store.append("payments-a-1", eventstore::ExpectedVersion::any(),
                 {{ids.uuid_v4(), "FundsDeposited", {{"amount", 1}}, {}}});
    on_committed = [this] { ++committed; };

    // When a runtime runs.
    auto& ledger = start_ledger(options("p-1"));

    // Then every receipt took effect exactly once, in its stream's order, and nothing else did.
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 56; }, 20s));
    EXPECT_TRUE(ledger.each_once());
    for (const auto& [sku, ids] : written) EXPECT_EQ(ledger.order_of("inventory-" + sku), ids);
    // Each partition's checkpoint reached its last event, batch by batch (3 per transaction).
    for (const auto& [sku, ids] : written) {
        ASSERT_TRUE(eventually([&] { return caught_up("inventory-" + sku); }, 20s)) << sku;
    }
    EXPECT_GE(committed.load(), 56 / 3);
    EXPECT_TRUE(slots.dead_letters().empty());
}

TEST_F(ProjectionRuntime, EventsAppendedWhileRunningAreAppliedOnce) {
    auto& ledger = start_ledger(options("p-1"));
    auto first = receive("sku-1", {1, 2});
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 2; }, 20s));
    auto second = receive("sku-1", {3, 4, 5, 6});
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 6; }, 20s));
    EXPECT_TRUE(ledger.each_once());
    first.insert(first.end(), second.begin(), second.end());
    EXPECT_EQ(ledger.order_of("inventory-sku-1"), first);
}

TEST_F(ProjectionRuntime, APoisonEventIsParkedAndTheSkipPolicyGoesOnPastIt) {
    auto ids_written = receive("sku-1", {1, 13, 2, 3});
    auto& ledger = start_poisoned(DeadLetterPolicy::skip);

    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 3; }, 20s));
    ASSERT_TRUE(eventually([&] { return caught_up("inventory-sku-1"); }, 20s));
    EXPECT_EQ(ledger.times(ids_written[1]), 0);
    EXPECT_TRUE(ledger.each_once());
    const auto letters = slots.dead_letters();
    ASSERT_EQ(letters.size(), 1U);
    EXPECT_EQ(letters[0].event.event_id, ids_written[1]);
    EXPECT_EQ(letters[0].status, DeadLetterStatus::parked);
    EXPECT_EQ(letters[0].policy, DeadLetterPolicy::skip);
    EXPECT_NE(letters[0].error.find("cannot apply a receipt of 13"), std::string::npos);
}

TEST_F(ProjectionRuntime, TheHaltPolicyWaitsAtThePoisonUntilAnOperatorSkipsIt) {
    // Given a poison event in sku-1's partition and another partition's events.
    auto blocked = receive("sku-1", {1, 13, 2});
    std::string other = "sku-2";
    for (int i = 2; platform::partition_of("inventory-" + other, kPartitions) ==
                    platform::partition_of("inventory-sku-1", kPartitions);
         ++i) {
        other = "sku-x" + std::to_string(i);
    }
    auto elsewhere = receive(other, {4, 5});
    auto& ledger = start_poisoned(DeadLetterPolicy::halt);

    // Then the partition stops before the poison; the other goes on.
    ASSERT_TRUE(eventually([&] { return slots.dead_letters().size() == 1; }, 20s));
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 3; }, 20s));
    EXPECT_EQ(ledger.times(blocked[0]), 1);
    EXPECT_EQ(ledger.times(elsewhere[0]), 1);
    EXPECT_EQ(ledger.times(elsewhere[1]), 1);
    const auto letter = slots.dead_letters()[0];
    EXPECT_EQ(letter.policy, DeadLetterPolicy::halt);
    // More events behind the poison wait too.
    auto later = receive("sku-1", {6});
    ASSERT_TRUE(eventually(
        [&] {
            auto s = slots.statuses();
            // Halted at the letter, with the poison and the two events behind it waiting.
            return std::any_of(s.begin(), s.end(), [&](const SlotStatus& st) {
                return st.halted_on == letter.id && st.lag.events == 3;
            });
        },
        20s));
    EXPECT_EQ(ledger.times(blocked[2]), 0);
    EXPECT_EQ(ledger.times(later[0]), 0);

    // When an operator skips the letter.
    ASSERT_EQ(slots.request(letter.id, DeadLetterRequest::skip), DeadLetterStatus::skip_requested);

    // Then the letter is settled as skipped and the partition goes on after it.
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 5; }, 20s));
    EXPECT_EQ(slots.dead_letters()[0].status, DeadLetterStatus::skipped);
    EXPECT_EQ(ledger.times(blocked[1]), 0);
    EXPECT_TRUE(ledger.each_once());
    EXPECT_EQ(ledger.order_of("inventory-sku-1"),
              (std::vector<std::string>{blocked[0], blocked[2], later[0]}));
}

TEST_F(ProjectionRuntime, ARetriedLetterTakesEffectOnceWhenTheSinkIsFixed) {
    auto written = receive("sku-1", {13, 1});
    auto& ledger = start_poisoned(DeadLetterPolicy::halt);
    ASSERT_TRUE(eventually([&] { return slots.dead_letters().size() == 1; }, 20s));
    const auto id = slots.dead_letters()[0].id;

    // A retry while still broken parks it again, one attempt more.
    ASSERT_EQ(slots.request(id, DeadLetterRequest::retry), DeadLetterStatus::retry_requested);
    ASSERT_TRUE(eventually(
        [&] {
            auto l = slots.dead_letters()[0];
            return l.status == DeadLetterStatus::parked && l.attempts == 2;
        },
        20s));
    EXPECT_EQ(ledger.distinct(), 0U);

    // Fixed, then retried: applied once, the letter resolved, the partition goes on.
    ledger.poison = -1;
    ASSERT_EQ(slots.request(id, DeadLetterRequest::retry), DeadLetterStatus::retry_requested);
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 2; }, 20s));
    EXPECT_EQ(slots.dead_letters()[0].status, DeadLetterStatus::resolved);
    EXPECT_TRUE(ledger.each_once());
    EXPECT_EQ(ledger.order_of("inventory-sku-1"), written);
}

// A step is one transaction: open dead letters are looked at on a slot's first visit and
// then when an operator asks (the sweep's survey finds those), not before every step.
TEST_F(ProjectionRuntime, DeadLettersAreLookedAtOnTheFirstVisitAndWhenAskedNotBeforeEveryStep) {
    auto& ledger = start_ledger(options("p-1"));
    for (std::size_t i = 1; i <= 20; ++i) {
        receive("sku-1", {1});
        ASSERT_TRUE(eventually([&] { return ledger.distinct() == i; }, 20s));
    }
    // Each owned slot's first visit, and no more.
    EXPECT_EQ(slots.letter_looks(), static_cast<std::size_t>(kPartitions));
}

// An idle runtime's sweep is one transaction, not one per slot: its survey passes over the
// slots with nothing new. The slots of partitions with nothing new still reach the head, so
// a consistency token sees them caught up.
TEST_F(ProjectionRuntime, AnIdleSweepIsOneTransactionAndIdleSlotsStillReachTheHead) {
    auto o = options("p-1");
    o.status_interval = 1h;  // status writes are transactions of their own
    auto& ledger = start_ledger(o);
    receive("sku-1", {1, 2});
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 2; }, 20s));
    ASSERT_TRUE(eventually([&] { return caught_up("inventory-sku-1"); }, 20s));

    auto& sweeps = metrics.counter("ordo_projection_sweeps_total", "", {{"runtime", "projector"}});
    // A sweep under way when the count starts may have surveyed already.
    ASSERT_TRUE(eventually([&, from = sweeps.value()] { return sweeps.value() > from; }, 20s));
    const auto sweeps_before = sweeps.value();
    const auto transactions_before = slots.transactions();
    ASSERT_TRUE(eventually([&] { return sweeps.value() >= sweeps_before + 10; }, 20s));
    const auto swept = sweeps.value() - sweeps_before;
    const auto transactions = static_cast<double>(slots.transactions() - transactions_before);
    // One survey each, and one more for a sweep that began before the count ended.
    EXPECT_LE(transactions, swept + 1) << swept << " sweeps over " << kPartitions << " slots";
    EXPECT_GE(transactions, swept);

    // An event in another partition moves the head: every slot reaches it, the one with the
    // event by a step, the others by the survey's advance.
    auto advanced = [&] {
        return metrics
            .counter("ordo_projection_checkpoints_advanced_total", "", {{"runtime", "projector"}})
            .value();
    };
    const auto advanced_before = advanced();
    std::string other = "sku-2";
    for (int i = 3; platform::partition_of("inventory-" + other, kPartitions) ==
                    platform::partition_of("inventory-sku-1", kPartitions);
         ++i) {
        other = "sku-" + std::to_string(i);
    }
    receive(other, {3});
    const auto head = store.read_stream("inventory-" + other, 1, 10).back().checkpoint();
    ASSERT_TRUE(eventually(
        [&] {
            for (int p = 0; p < kPartitions; ++p) {
                if (slots.checkpoint("ledger", p) != head) return false;
            }
            return true;
        },
        20s));
    EXPECT_EQ(ledger.distinct(), 3U);
    EXPECT_TRUE(ledger.each_once());
    EXPECT_EQ(advanced() - advanced_before, kPartitions - 1);
}

// A slot taken (again, after a lost session, or from another runtime) is known neither to
// be caught up nor to have no dead letters due: the owner before may have parked or settled
// some, so its first step looks at them, however soon after the taking it comes.
TEST_F(ProjectionRuntime, ASlotTakenIsMarkedToLookAtItsDeadLettersFirst) {
    Ledger ledger;
    std::vector<Slot> slots_of_runtime;
    for (int p = 0; p < kPartitions; ++p) {
        Slot s{&ledger, p, 3};
        s.idle = true;
        s.settle_pending = false;  // as a runtime leaves them after settling
        slots_of_runtime.push_back(s);
    }
    MemoryLeases mine{leases, "p-1", 50ms};
    mine.connect(slots_of_runtime);
    mine.balance(slots_of_runtime);
    ASSERT_EQ(mine.owned(), static_cast<std::size_t>(kPartitions));
    for (const auto& s : slots_of_runtime) {
        EXPECT_TRUE(s.owned);
        EXPECT_FALSE(s.idle);
        EXPECT_TRUE(s.settle_pending);
    }
}

TEST_F(ProjectionRuntime, TransientFailuresAreRetriedWithNothingLostRepeatedOrParked) {
    auto written = receive("sku-1", {1, 2, 3, 4, 5, 6, 7});
    // Commits that fail after the read model was written, and applies that fail outright.
    slots.fail_commits(2);
    auto ledger_ptr = std::make_unique<Ledger>();
    ledger_ptr->transient = 2;
    auto& ledger = *ledger_ptr;
    start(std::move(ledger_ptr), options("p-1"));

    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 7; }, 30s));
    ASSERT_TRUE(eventually([&] { return caught_up("inventory-sku-1"); }, 20s));
    EXPECT_TRUE(ledger.each_once());
    EXPECT_EQ(ledger.order_of("inventory-sku-1"), written);
    EXPECT_TRUE(slots.dead_letters().empty());
    EXPECT_EQ(ledger.transient.load(), 0);
}

// A slot whose step failed is stepped again at its retry time, not at the next poll or
// notification: here the poll is ten minutes and nothing is appended after the start.
TEST_F(ProjectionRuntime, AFailedSlotIsSteppedAgainAtItsRetryTimeWhateverThePoll) {
    auto written = receive("sku-1", {1, 2});
    auto ledger_ptr = std::make_unique<Ledger>();
    ledger_ptr->transient = 1;
    auto& ledger = *ledger_ptr;
    auto o = options("p-1");
    o.poll_interval = 10min;
    start(std::move(ledger_ptr), std::move(o));

    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 2; }, 30s));
    EXPECT_EQ(ledger.transient.load(), 0);  // it did fail once
    EXPECT_EQ(ledger.order_of("inventory-sku-1"), written);
}

// A slot whose projection's breaker is open stays failed, its retry time past, and is
// refused at each look: the runtime waits for the poll all the same, not in a loop that
// looks again at once. (A spin shows as hundreds of thousands of waits in the second given;
// the runtime's waits here are a handful.)
TEST_F(ProjectionRuntime, AnOpenBreakerDoesNotTurnTheWaitIntoASpin) {
    receive("sku-1", {1});
    constexpr int kAlways = 1'000'000;
    auto ledger_ptr = std::make_unique<Ledger>();
    ledger_ptr->transient = kAlways;
    auto& ledger = *ledger_ptr;
    auto o = options("p-1");
    o.poll_interval = 10min;
    o.breaker.consecutive_failures = 1;  // open at the first failure...
    o.breaker.cool_down = 10min;         // ...for the whole test
    o.breaker.jitter = 0;
    auto& running_one = start(std::move(ledger_ptr), std::move(o));

    ASSERT_TRUE(eventually([&] { return ledger.transient.load() < kAlways; }));
    const auto waits = running_one.leases->waits();
    std::this_thread::sleep_for(1s);  // past the slot's retry time (200 ms)
    EXPECT_LT(running_one.leases->waits() - waits, 20u);
    EXPECT_EQ(ledger.transient.load(), kAlways - 1);  // refused by the breaker since
}

// The store's reads behind a horizon that hides the events until the first look after the
// runtime asked it, and passes right after that look, as when an older transaction ends on
// the server: no notification comes for that. The runtime asks before it looks, finds
// events hidden, and looks again soon. Had it asked after its look (or not at all), it would
// have found nothing hidden and waited for the ten-minute poll.
class HorizonReader final : public eventstore::EventReader {
   public:
    explicit HorizonReader(eventstore::EventReader& events) : events_{events} {}
    std::vector<eventstore::RecordedEvent> read_stream(const std::string& stream,
                                                       std::int64_t from_version,
                                                       std::size_t max_count) override {
        return events_.read_stream(stream, from_version, max_count);
    }
    std::vector<eventstore::RecordedEvent> read_all(eventstore::Checkpoint after,
                                                    std::size_t max_count) override {
        if (!hiding) return events_.read_all(after, max_count);
        if (asked) hiding = false;  // once this look is over
        return {};
    }
    // The runtime's probe.
    bool hidden() {
        asked = true;
        return hiding;
    }
    std::atomic<bool> hiding{true};

   private:
    eventstore::EventReader& events_;
    std::atomic<bool> asked{false};
};

TEST_F(ProjectionRuntime, EventsAHorizonHidFromALookAreAppliedThoughItPassedUnannounced) {
    // Appended without a notification: it came, in the story, while they were hidden.
    std::vector<eventstore::NewEvent> batch;
    for (int q : {1, 2}) {
        batch.push_back({ids.uuid_v4(), "StockReceived", {{"sku", "sku-1"}, {"quantity", q}}, {}});
    }
    store.append("inventory-sku-1", eventstore::ExpectedVersion::any(), batch);
    HorizonReader reader{store};
    MemorySlotStore behind{reader, kPartitions};
    auto ledger_ptr = std::make_unique<Ledger>();
    auto& ledger = *ledger_ptr;
    auto o = options("p-1");
    o.poll_interval = 10min;
    start(std::move(ledger_ptr), std::move(o), &behind, [&] { return reader.hidden(); });

    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 2; }, 30s));
    EXPECT_FALSE(reader.hiding.load());
    EXPECT_TRUE(ledger.each_once());
}

TEST_F(ProjectionRuntime, ASinkThatRefusesEveryEventIsNotTakenForPoison) {
    // Given a sink broken for good on every event: at most a few are parked (the runtime
    // cannot tell at first), then it stops parking and waits at its checkpoint.
    receive("sku-1", {1, 2, 3, 4, 5, 6, 7, 8, 9});
    auto ledger_ptr = std::make_unique<Ledger>();
    ledger_ptr->refuse_all = true;
    auto& ledger = *ledger_ptr;
    start(std::move(ledger_ptr), options("p-1"));
    ASSERT_TRUE(eventually([&] { return slots.dead_letters().size() == 3; }, 20s));
    const auto parked_checkpoint =
        slots.checkpoint("ledger", platform::partition_of("inventory-sku-1", kPartitions));

    // When it is fixed, the rest is applied once and nothing more was parked.
    ledger.refuse_all = false;
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 6; }, 30s));
    EXPECT_EQ(slots.dead_letters().size(), 3U);
    EXPECT_TRUE(ledger.each_once());
    EXPECT_GT(slots.checkpoint("ledger", platform::partition_of("inventory-sku-1", kPartitions)),
              parked_checkpoint);
}

TEST_F(ProjectionRuntime, RuntimesShareTheSlotsAndASurvivorTakesOverTheRest) {
    auto& one = start(std::make_unique<Ledger>(), options("p-1"));
    auto& two = start(std::make_unique<Ledger>(), options("p-2"));
    // Fair shares of the four slots: two each.
    ASSERT_TRUE(eventually(
        [&] { return one.runtime->owned_slots() == 2 && two.runtime->owned_slots() == 2; }, 20s));

    // When one runtime's session dies, the other takes all the slots.
    one.leases->disconnect();
    one.halt();
    ASSERT_TRUE(eventually([&] { return two.runtime->owned_slots() == 4; }, 20s));
}

TEST_F(ProjectionRuntime, TwoRuntimesApplyEachEventOnceBetweenThem) {
    // Two runtimes of one group, each with its own ledger: together they apply every event
    // once (each slot is one runtime's at a time; the checkpoint moves with the read model).
    // Events come before, while the slots are shared out, and after both hold their shares.
    std::vector<std::string> all;
    auto write = [&](int from, int to) {
        for (int i = from; i < to; ++i) {
            auto written = receive("sku-" + std::to_string(i), {1, 2, 3});
            all.insert(all.end(), written.begin(), written.end());
        }
    };
    write(0, 6);
    auto a = std::make_unique<Ledger>();
    auto b = std::make_unique<Ledger>();
    auto& first = *a;
    auto& second = *b;
    auto& one = start(std::move(a), options("p-1"));
    auto& two = start(std::move(b), options("p-2"));
    write(6, 12);
    ASSERT_TRUE(eventually(
        [&] { return one.runtime->owned_slots() == 2 && two.runtime->owned_slots() == 2; }, 20s));
    write(12, 24);
    ASSERT_TRUE(
        eventually([&] { return first.distinct() + second.distinct() == all.size(); }, 20s));
    for (const auto& id : all) EXPECT_EQ(first.times(id) + second.times(id), 1) << id;
    // Both took part.
    EXPECT_GT(first.distinct(), 0U);
    EXPECT_GT(second.distinct(), 0U);
}

TEST_F(ProjectionRuntime, StatusShowsOwnedSlotsCaughtUpWithTheirBreakers) {
    receive("sku-1", {1, 2, 3, 4});
    auto& ledger = start_ledger(options("p-1"));
    ASSERT_TRUE(eventually([&] { return ledger.distinct() == 4; }, 20s));
    ASSERT_TRUE(eventually(
        [&] {
            auto all = slots.statuses();
            return all.size() == kPartitions &&
                   std::all_of(all.begin(), all.end(),
                               [](const SlotStatus& s) { return s.lag.events == 0; });
        },
        20s));
    for (const auto& s : slots.statuses()) {
        EXPECT_EQ(s.projection, "ledger");
        EXPECT_EQ(s.instance, "p-1");
        EXPECT_EQ(s.breaker, "closed");
        EXPECT_FALSE(s.halted_on.has_value());
    }
}

}  // namespace
}  // namespace ordo::projections
