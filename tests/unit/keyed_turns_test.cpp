// KeyedTurns: turns per key in arrival order, deadlines, and the bounds on lines and the table.

#include "platform/core/keyed_turns.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "platform/core/errors.hpp"

namespace {

using ordo::platform::KeyedTurns;
using ordo::platform::Overloaded;
using Clock = std::chrono::steady_clock;

Clock::time_point far() {
    return Clock::now() + std::chrono::minutes(5);
}

// Blocks until `turns` has `n` waiters: waiters arrive in a known order without guessing
// how long a thread takes to start.
void until_waiting(const KeyedTurns& turns, std::size_t n) {
    while (turns.waiting() != n) std::this_thread::yield();
}

TEST(KeyedTurns, DifferentKeysDoNotWaitForEachOther) {
    KeyedTurns turns;
    auto a = turns.take("a", far());
    auto b = turns.take("b", Clock::now());  // a deadline already past: no wait needed
    EXPECT_EQ(turns.keys(), 2u);
    EXPECT_EQ(turns.waiting(), 0u);
}

TEST(KeyedTurns, WaitersGetTheKeyInArrivalOrder) {
    KeyedTurns turns;
    std::optional<KeyedTurns::Turn> held{turns.take("k", far())};
    std::mutex mutex;
    std::vector<int> order;
    std::vector<std::thread> threads;
    constexpr int kWaiters = 8;
    for (int i = 0; i < kWaiters; ++i) {
        threads.emplace_back([&, i] {
            auto turn = turns.take("k", far());
            std::lock_guard lock{mutex};
            order.push_back(i);
        });
        until_waiting(turns, static_cast<std::size_t>(i + 1));
    }
    held.reset();
    for (auto& t : threads) t.join();
    ASSERT_EQ(order.size(), static_cast<std::size_t>(kWaiters));
    for (int i = 0; i < kWaiters; ++i) EXPECT_EQ(order[i], i);
    EXPECT_EQ(turns.keys(), 0u) << "a key nobody holds or waits for is forgotten";
}

TEST(KeyedTurns, OneHolderAtATime) {
    KeyedTurns turns;
    std::atomic<int> inside{0};
    std::atomic<int> most{0};
    std::vector<std::thread> threads;
    for (int i = 0; i < 16; ++i) {
        threads.emplace_back([&] {
            for (int round = 0; round < 200; ++round) {
                auto turn = turns.take("k", far());
                int now = ++inside;
                int seen = most.load();
                while (now > seen && !most.compare_exchange_weak(seen, now)) {
                }
                --inside;
            }
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(most.load(), 1);
    EXPECT_EQ(turns.keys(), 0u);
}

TEST(KeyedTurns, AWaiterPastItsDeadlineIsRefusedAndLeavesTheLine) {
    KeyedTurns turns;
    auto held = turns.take("k", far());
    EXPECT_THROW(turns.take("k", Clock::now() + std::chrono::milliseconds(1)), Overloaded);
    EXPECT_EQ(turns.waiting(), 0u);
    EXPECT_EQ(turns.keys(), 1u);
}

TEST(KeyedTurns, AFullLineRefusesAtOnce) {
    KeyedTurns turns{{.max_waiting_per_key = 2, .max_waiting = 100}};
    std::optional<KeyedTurns::Turn> held{turns.take("k", far())};
    std::vector<std::thread> threads;
    for (int i = 0; i < 2; ++i) {
        threads.emplace_back([&] { auto turn = turns.take("k", far()); });
        until_waiting(turns, static_cast<std::size_t>(i + 1));
    }
    // A deadline far away: the refusal is the bound, not the clock.
    EXPECT_THROW(turns.take("k", far()), Overloaded);
    auto other = turns.take("other", far());  // other keys are not affected
    held.reset();
    for (auto& t : threads) t.join();
}

TEST(KeyedTurns, TheWholeTableIsBounded) {
    KeyedTurns turns{{.max_waiting_per_key = 10, .max_waiting = 2}};
    std::optional<KeyedTurns::Turn> a{turns.take("a", far())};
    std::optional<KeyedTurns::Turn> b{turns.take("b", far())};
    std::vector<std::thread> threads;
    threads.emplace_back([&] { auto turn = turns.take("a", far()); });
    until_waiting(turns, 1);
    threads.emplace_back([&] { auto turn = turns.take("b", far()); });
    until_waiting(turns, 2);
    EXPECT_THROW(turns.take("a", far()), Overloaded);
    a.reset();
    b.reset();
    for (auto& t : threads) t.join();
    EXPECT_EQ(turns.keys(), 0u);
}

TEST(KeyedTurns, ARefusedWaiterDoesNotBlockThoseBehindIt) {
    KeyedTurns turns;
    std::optional<KeyedTurns::Turn> held{turns.take("k", far())};
    std::atomic<bool> late_refused{false};
    std::thread impatient{[&] {
        try {
            auto turn = turns.take("k", Clock::now() + std::chrono::milliseconds(50));
        } catch (const Overloaded&) {
            late_refused = true;
        }
    }};
    until_waiting(turns, 1);
    std::atomic<bool> patient_served{false};
    std::thread patient{[&] {
        auto turn = turns.take("k", far());
        patient_served = true;
    }};
    impatient.join();  // its deadline passes while `held` still holds the key
    EXPECT_TRUE(late_refused);
    until_waiting(turns, 1);
    held.reset();
    patient.join();
    EXPECT_TRUE(patient_served);
}

}  // namespace
