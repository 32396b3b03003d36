// Group commit on PostgreSQL: units queued behind a running batch share one transaction, and
// each one's failure (a conflict, an exception after it appended, a statement the server
// cancelled) rolls back that unit alone.
#include <gtest/gtest.h>

#include <future>
#include <memory>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
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

// Holds the row lock of each of `streams` (which exist) in a transaction of its own on
// `store` until `release` is set; returns once they are held.
std::future<void> hold_streams(EventStore& store, std::vector<std::string> streams,
                               std::promise<void>& release) {
    auto held = std::make_shared<std::promise<void>>();
    auto holding = held->get_future();
    auto running = std::async(std::launch::async, [&store, &release, held, streams] {
        store.transact([&](Session& s) {
            for (const auto& stream : streams) s.lock_stream(stream, 2);
            held->set_value();
            release.get_future().wait();
        });
    });
    holding.wait();
    return running;
}

// A store on a pool of one connection, which a held session batch (hold_a_batch) keeps:
// then the first append leads a batch that waits for the connection, and the appends after
// it queue for the next batch.
struct OneConnectionStore {
    explicit OneConnectionStore(const testing::TestDatabase& db,
                                std::chrono::milliseconds statement_timeout = 5000ms)
        : pool{PoolOptions{.url = db.command_url(),
                           .size = 1,
                           .acquire_timeout = 30s,
                           .statement_timeout = statement_timeout,
                           .preparers = {&EventStore::prepare},
                           .operation_timeout = 30s}},
          store{pool, nullptr, GroupCommit::Options{.max_batch = 16, .max_in_flight = 1}} {}
    Pool pool;
    EventStore store;
};

TEST(GroupCommitOnPostgres, ConcurrentDirectAppendsShareOneStatementEachWithItsOwnOutcome) {
    testing::TestDatabase db;
    OneConnectionStore one{db};
    auto& store = one.store;
    Pool other_pool{
        PoolOptions{.url = db.command_url(), .size = 2, .preparers = {&EventStore::prepare}}};
    EventStore other{other_pool};

    // Alone: one batch of one append, a single statement.
    const auto replayed = one_event();
    store.append("alone-1", ExpectedVersion::no_stream(), replayed);
    EXPECT_EQ(store.append_grouping().stats().batches, 1u);
    EXPECT_EQ(store.grouping().stats().batches, 0u);  // appends are not sessions' batches

    other.append("busy-1", ExpectedVersion::no_stream(), one_event());
    other.append("d-5", ExpectedVersion::no_stream(), {one_event()[0], one_event()[0]});
    // This shard fences fenced-1's partition (of 64), which holds none of the other streams.
    const int fenced_partition = platform::partition_of("fenced-1", 64);
    for (const auto* stream :
         {"busy-1", "alone-1", "first-1", "d-0", "d-1", "d-2", "d-3", "d-4", "d-5", "d-6", "d-7"}) {
        ASSERT_NE(platform::partition_of(stream, 64), fenced_partition) << stream;
    }
    {
        pqxx::connection admin{db.admin_url()};
        pqxx::work tx{admin};
        tx.exec_params("INSERT INTO ordo.partition_fences (partition, partitions) VALUES ($1, 64)",
                       fenced_partition);
        tx.commit();
    }
    // Another transaction holds busy-1's row until released.
    std::promise<void> release_busy;
    auto busy_holding = hold_streams(other, {"busy-1"}, release_busy);

    // The only connection is a held session's: the first append leads a batch that waits for
    // it, and the appends after it queue for the next batch.
    std::promise<void> go;
    auto session = hold_a_batch(store, go);
    auto first = std::async(std::launch::async, [&] {
        return store.append("d-0", ExpectedVersion::no_stream(), one_event());
    });
    while (store.append_grouping().stats().batches < 2) std::this_thread::yield();
    std::vector<std::future<AppendResult>> appends;
    auto queue = [&](std::string stream, ExpectedVersion expected, std::vector<NewEvent> events) {
        const auto before = store.append_grouping().queued();
        appends.push_back(std::async(std::launch::async, [&store, stream, expected, events] {
            return store.append(stream, expected, events);
        }));
        while (store.append_grouping().queued() < before + 1) std::this_thread::yield();
    };
    queue("d-1", ExpectedVersion::no_stream(), one_event());
    queue("d-2", ExpectedVersion::exact(3), one_event());
    queue("alone-1", ExpectedVersion::no_stream(), replayed);
    queue("busy-1", ExpectedVersion::exact(1), one_event());
    queue("d-3", ExpectedVersion::any(), {one_event()[0], one_event()[0]});
    queue("d-1", ExpectedVersion::exact(1), one_event());  // after d-1's first: one stream twice
    queue("fenced-1", ExpectedVersion::no_stream(), one_event());
    queue("d-4", ExpectedVersion::any(), replayed);        // alone-1's events, in another stream
    queue("d-5", ExpectedVersion::exact(2), one_event());  // a stream with events before
    const auto shared = one_event();                       // new, and in two appends of the batch
    queue("d-6", ExpectedVersion::any(), shared);
    queue("d-7", ExpectedVersion::any(), shared);
    go.set_value();
    session.get();
    EXPECT_EQ(first.get().last_version, 1);

    // Each with its own outcome: a conflict fails alone, a re-append of stored events
    // replays, a fenced stream fails alone, and one whose stream another transaction holds
    // runs again alone once the others have committed.
    EXPECT_EQ(appends[0].get().last_version, 1);
    EXPECT_THROW(appends[1].get(), ConcurrencyConflict);
    EXPECT_TRUE(appends[2].get().replayed);
    const auto d3 = appends[4].get();
    EXPECT_EQ(d3.first_version, 1);
    EXPECT_EQ(d3.last_version, 2);
    EXPECT_EQ(d3.positions.size(), 2u);
    EXPECT_EQ(appends[5].get().last_version, 2);
    EXPECT_THROW(appends[6].get(), PartitionFenced);
    EXPECT_THROW(appends[7].get(), EventIdReused);
    const auto d5 = appends[8].get();
    EXPECT_EQ(d5.first_version, 3);
    EXPECT_EQ(d5.last_version, 3);
    // The first of two appends of one new event id stores it, the other is refused.
    EXPECT_EQ(appends[9].get().last_version, 1);
    EXPECT_THROW(appends[10].get(), EventIdReused);
    EXPECT_EQ(other.stream_version("d-7"), 0);
    EXPECT_EQ(other.stream_version("d-3"), 2);
    EXPECT_EQ(other.stream_version("d-2"), 0);
    // busy-1 waits, alone and outside the batches, for its stream: another append is not
    // held up by it.
    EXPECT_EQ(appends[3].wait_for(0s), std::future_status::timeout);
    const auto stats_while_held = store.append_grouping().stats();
    EXPECT_EQ(stats_while_held.batches, 3u);  // the lone append, d-0's, the eleven
    EXPECT_EQ(stats_while_held.largest, 11u);
    release_busy.set_value();
    busy_holding.get();
    EXPECT_EQ(appends[3].get().last_version, 2);
    EXPECT_EQ(store.append_grouping().stats().batches, 3u);  // busy-1 alone ran outside them
}

TEST(GroupCommitOnPostgres, ALoneAppendToAHeldStreamWaitsOutsideTheOnlyBatchSlot) {
    testing::TestDatabase db;
    Pool pool{PoolOptions{.url = db.command_url(), .size = 2, .preparers = {&EventStore::prepare}}};
    EventStore store{pool, nullptr, GroupCommit::Options{.max_batch = 16, .max_in_flight = 1}};
    Pool other_pool{
        PoolOptions{.url = db.command_url(), .size = 2, .preparers = {&EventStore::prepare}}};
    EventStore other{other_pool};
    other.append("held-1", ExpectedVersion::no_stream(), one_event());
    std::promise<void> release;
    auto holding = hold_streams(other, {"held-1"}, release);

    // Alone in its batch, the append to held-1 hears 'busy' and waits for the lock on its own
    // thread; the one batch slot is free again, and the next append commits meanwhile.
    auto waiting = std::async(std::launch::async, [&] {
        return store.append("held-1", ExpectedVersion::exact(1), one_event());
    });
    while (store.append_grouping().stats().batches < 1) std::this_thread::yield();
    EXPECT_EQ(store.append("free-1", ExpectedVersion::no_stream(), one_event()).last_version, 1);
    EXPECT_EQ(waiting.wait_for(0s), std::future_status::timeout);
    release.set_value();
    holding.get();
    EXPECT_EQ(waiting.get().last_version, 2);
    EXPECT_EQ(store.append_grouping().stats().batches, 2u);  // held-1's alone ran outside them
}

TEST(GroupCommitOnPostgres, AStatementOfAppendsThatFailsAsAWholeRunsEachAgainAlone) {
    testing::TestDatabase db;
    // Statements give up after 500 ms: the lone append of new-1 below.
    OneConnectionStore one{db, 500ms};
    auto& store = one.store;
    Pool other_pool{
        PoolOptions{.url = db.command_url(), .size = 2, .preparers = {&EventStore::prepare}}};
    EventStore other{other_pool};

    // Another transaction creates new-1 and has not committed: an append to new-1 waits for
    // it (there is no row to find locked). In a batch statement it gives up after 50 ms.
    std::promise<void> creating, release_new;
    auto creator = std::async(std::launch::async, [&] {
        other.transact([&](Session& s) {
            s.append("new-1", ExpectedVersion::no_stream(), one_event());
            creating.set_value();
            release_new.get_future().wait();
        });
    });
    creating.get_future().wait();

    std::promise<void> go;
    auto session = hold_a_batch(store, go);
    auto first = std::async(std::launch::async, [&] {
        return store.append("first-2", ExpectedVersion::any(), one_event());
    });
    while (store.append_grouping().stats().batches < 1) std::this_thread::yield();
    std::vector<std::future<AppendResult>> appends;
    auto queue = [&](std::string stream) {
        const auto before = store.append_grouping().queued();
        appends.push_back(std::async(std::launch::async, [&store, stream] {
            return store.append(stream, ExpectedVersion::any(), one_event());
        }));
        while (store.append_grouping().queued() < before + 1) std::this_thread::yield();
    };
    queue("a-1");
    queue("new-1");
    queue("b-1");
    go.set_value();
    session.get();
    EXPECT_EQ(first.get().last_version, 1);

    // The statement of the three gave up whole; a-1 and b-1 then committed alone, and new-1
    // alone waited for the creator until the server cancelled it.
    EXPECT_EQ(appends[0].get().last_version, 1);
    EXPECT_THROW(appends[1].get(), std::exception);
    EXPECT_EQ(appends[2].get().last_version, 1);
    release_new.set_value();
    creator.get();
    EXPECT_EQ(store.stream_version("new-1"), 1);  // the creator's event only
    const auto stats = store.append_grouping().stats();
    EXPECT_EQ(stats.batches, 2u);  // first-2's, the three (then each alone, outside them)
    EXPECT_EQ(stats.largest, 3u);
}

// A connection lost while an append's statement runs: the statement may have committed, so
// the caller is told OutcomeUnknown rather than a plain failure; the same append again then
// finds out (here: it had not committed, and now does).
TEST(GroupCommitOnPostgres, AnAppendWhoseConnectionBreaksWhileItsStatementRunsIsInDoubt) {
    testing::TestDatabase db;
    Pool pool{PoolOptions{.url = db.command_url(),
                          .size = 2,
                          .name = "in-doubt",
                          .preparers = {&EventStore::prepare}}};
    AppendNotifier notifier{db.command_url(), platform::Logger::null_logger()};
    EventStore store{pool, &notifier};
    pqxx::connection listening{db.command_url()};
    int woken = 0;
    AppendSubscription wakes{listening, [&] { ++woken; }};
    Pool other_pool{
        PoolOptions{.url = db.command_url(), .size = 2, .preparers = {&EventStore::prepare}}};
    EventStore other{other_pool};
    // Another transaction creates new-1 and has not committed: the append waits for it inside
    // its statement.
    std::promise<void> creating, release;
    auto creator = std::async(std::launch::async, [&] {
        other.transact([&](Session& s) {
            s.append("new-1", ExpectedVersion::no_stream(), one_event());
            creating.set_value();
            release.get_future().wait();
        });
    });
    creating.get_future().wait();
    // Whatever fails below, the creator ends, and the append waiting for it with it.
    std::shared_ptr<void> let_go{nullptr, [&](void*) {
                                     try {
                                         release.set_value();
                                     } catch (const std::future_error&) {
                                     }
                                 }};
    const auto events = one_event();
    auto waiting = std::async(
        std::launch::async, [&] { return store.append("new-1", ExpectedVersion::any(), events); });
    // Its backend, waiting for the creator's lock, is ended under it.
    pqxx::connection admin{db.admin_url()};
    ASSERT_TRUE(testing::eventually([&] {
        pqxx::nontransaction tx{admin};
        return tx.exec1(
                     "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                     "WHERE application_name = 'ordo-in-doubt-pool' "
                     "AND wait_event_type = 'Lock'")[0]
                   .as<int>() > 0;
    }));
    EXPECT_THROW(waiting.get(), platform::OutcomeUnknown);
    // It may have committed: listeners are woken as for an append that did.
    EXPECT_TRUE(testing::eventually(
        [&] {
            wakes.await(std::chrono::milliseconds(100));
            return woken > 0;
        },
        std::chrono::seconds(20)));
    let_go.reset();
    creator.get();
    EXPECT_EQ(store.append("new-1", ExpectedVersion::any(), events).last_version, 2);
    EXPECT_TRUE(store.append("new-1", ExpectedVersion::any(), events).replayed);
}

}  // namespace
}  // namespace ordo::eventstore
