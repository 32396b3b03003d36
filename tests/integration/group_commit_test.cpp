// Group commit on PostgreSQL: units queued behind a running batch share one transaction, and
// each one's failure (a conflict, an exception after it appended, a statement the server
// cancelled) rolls back that unit alone.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::eventstore {
namespace {

using namespace std::chrono_literals;
using platform::pg::Pool;
using platform::pg::PoolOptions;

std::vector<NewEvent> one_event() {
    return {NewEvent{platform::new_uuid(), "Noted", {{"n", 1}}, {}}};
}

void append_new(Session& session, const std::string& stream) {
    session.append(stream, ExpectedVersion::no_stream(), one_event());
}

// A batch (appending to "first-1") that holds the store's only batch slot until `go` is set;
// returns once it runs.
std::future<void> hold_a_batch(EventStore& store, std::promise<void>& go) {
    auto held = std::make_shared<std::promise<void>>();
    auto running_now = held->get_future();
    auto running = std::async(std::launch::async, [&store, &go, held] {
        store.transact([&](Session& s) {
            append_new(s, "first-1");
            held->set_value();
            go.get_future().wait();
        });
    });
    running_now.wait();
    return running;
}

TEST(GroupCommitOnPostgres, QueuedUnitsShareATransactionAndEachFailureIsItsOwn) {
    testing::TestDatabase db;
    // Statements give up after 300 ms (a lock wait below); the batch as a whole may take
    // longer.
    Pool pool{PoolOptions{.url = db.command_url(),
                          .size = 4,
                          .statement_timeout = 300ms,
                          .preparers = {&EventStore::prepare},
                          .operation_timeout = 30s}};
    EventStore store{pool, nullptr, GroupCommit::Options{.max_batch = 16, .max_in_flight = 1}};
    Pool other_pool{
        PoolOptions{.url = db.command_url(), .size = 1, .preparers = {&EventStore::prepare}}};
    EventStore other{other_pool};
    other.append("locked-1", ExpectedVersion::no_stream(), one_event());

    // Another transaction holds locked-1's row until released.
    std::promise<void> locked, unlock;
    auto holder = std::async(std::launch::async, [&] {
        other.transact([&](Session& s) {
            s.lock_stream("locked-1", 2);
            locked.set_value();
            unlock.get_future().wait();
        });
    });
    locked.get_future().wait();

    // The first batch holds the only slot until released; the others queue behind it.
    std::promise<void> go;
    auto first = hold_a_batch(store, go);

    std::vector<std::future<void>> units;
    auto queue = [&](std::function<void(Session&)> work) {
        const auto before = store.grouping().queued();
        units.push_back(std::async(std::launch::async, [&store, work] { store.transact(work); }));
        while (store.grouping().queued() < before + 1) std::this_thread::yield();
    };
    queue([](Session& s) { append_new(s, "a-1"); });
    queue([](Session& s) { s.append("b-1", ExpectedVersion::exact(5), one_event()); });
    queue([](Session& s) {
        append_new(s, "c-1");
        throw std::runtime_error("c changed its mind");
    });
    // Waits for the lock a moment in the batch, then again alone until the server cancels
    // the statement (300 ms): the others commit without waiting for it.
    queue([](Session& s) { s.lock_stream("locked-1", 2); });
    queue([](Session& s) { append_new(s, "e-1"); });
    go.set_value();
    first.get();

    EXPECT_NO_THROW(units[0].get());
    EXPECT_THROW(units[1].get(), ConcurrencyConflict);
    EXPECT_THROW(units[2].get(), std::runtime_error);
    EXPECT_THROW(units[3].get(), std::exception);
    EXPECT_NO_THROW(units[4].get());
    unlock.set_value();
    holder.get();

    EXPECT_EQ(store.stream_version("first-1"), 1);
    EXPECT_EQ(store.stream_version("a-1"), 1);
    EXPECT_EQ(store.stream_version("b-1"), 0);
    EXPECT_EQ(store.stream_version("c-1"), 0);  // appended, then rolled back alone
    EXPECT_EQ(store.stream_version("e-1"), 1);
    const auto stats = store.grouping().stats();
    EXPECT_EQ(stats.batches, 3u);  // the first, the five, the lock waiter alone
    EXPECT_EQ(stats.largest, 5u);
}

TEST(GroupCommitOnPostgres, DirectAppendsJoinTheBatchesAndAloneRunInAutocommit) {
    testing::TestDatabase db;
    Pool pool{PoolOptions{.url = db.command_url(), .size = 2, .preparers = {&EventStore::prepare}}};
    EventStore store{pool, nullptr, GroupCommit::Options{.max_batch = 16, .max_in_flight = 1}};

    // Alone: one batch of one unit each, no transaction of its own needed.
    const auto replayed = one_event();
    store.append("alone-1", ExpectedVersion::no_stream(), replayed);
    EXPECT_EQ(store.grouping().stats().batches, 1u);

    // Queued behind a running batch: appends share the next transaction, each with its own
    // outcome (a conflict fails alone, a re-append of stored events replays).
    std::promise<void> go;
    auto first = hold_a_batch(store, go);
    std::vector<std::future<AppendResult>> appends;
    auto queue = [&](std::string stream, ExpectedVersion expected, std::vector<NewEvent> events) {
        const auto before = store.grouping().queued();
        appends.push_back(std::async(std::launch::async, [&store, stream, expected, events] {
            return store.append(stream, expected, events);
        }));
        while (store.grouping().queued() < before + 1) std::this_thread::yield();
    };
    queue("d-1", ExpectedVersion::no_stream(), one_event());
    queue("d-2", ExpectedVersion::exact(3), one_event());
    queue("alone-1", ExpectedVersion::no_stream(), replayed);
    queue("d-3", ExpectedVersion::any(), one_event());
    go.set_value();
    first.get();

    EXPECT_EQ(appends[0].get().last_version, 1);
    EXPECT_THROW(appends[1].get(), ConcurrencyConflict);
    EXPECT_TRUE(appends[2].get().replayed);
    EXPECT_EQ(appends[3].get().last_version, 1);
    EXPECT_EQ(store.stream_version("d-2"), 0);
    EXPECT_EQ(store.stream_version("alone-1"), 1);
    const auto stats = store.grouping().stats();
    EXPECT_EQ(stats.batches, 3u);  // the lone append, the held batch, the four appends
    EXPECT_EQ(stats.largest, 4u);
}

}  // namespace
}  // namespace ordo::eventstore
