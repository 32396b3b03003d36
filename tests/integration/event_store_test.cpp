// What only the PostgreSQL event store promises: its horizon, concurrent replays, append-only
// tables, append notifications, a pool that survives its connections. What every store
// promises is the Store contract (tests/support/store_contract.hpp, pg_store_contract_test).
#include <gtest/gtest.h>

#include <atomic>
#include <set>
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

using platform::pg::Pool;
using platform::pg::PoolOptions;
using testing::read_all_until;

NewEvent event(std::string type, nlohmann::json payload) {
    return NewEvent{platform::new_uuid(), std::move(type), std::move(payload), {}};
}

class EventStoreTest : public ::testing::Test {
   protected:
    testing::TestDatabase db_;
    Pool pool_{
        PoolOptions{.url = db_.command_url(), .size = 16, .preparers = {&EventStore::prepare}}};
    EventStore store_{pool_};
};

TEST_F(EventStoreTest, ConcurrentReAppendsOfOneBatchWriteItOnce) {
    auto batch =
        std::vector<NewEvent>{event("OrderPlaced", {{"n", 1}}), event("Other", {{"n", 2}})};
    std::vector<std::thread> threads;
    std::atomic<int> replays{0};
    for (int i = 0; i < 8; ++i) {
        threads.emplace_back([&] {
            if (store_.append("order-race", ExpectedVersion::no_stream(), batch).replayed)
                ++replays;
        });
    }
    for (auto& t : threads) t.join();
    EXPECT_EQ(replays.load(), 7);
    EXPECT_EQ(store_.read_stream("order-race", 1, 100).size(), 2u);
}

// The events argument of ordo.append_events: one event of `type`, with `event_id`.
std::string one_event_json(const std::string& type, const std::string& event_id,
                           const nlohmann::json& payload = nlohmann::json::object()) {
    return nlohmann::json::array({{{"event_id", event_id}, {"type", type}, {"payload", payload}}})
        .dump();
}

// Fences `partition` (of `partitions`) on `db`'s shard, as a move or `ordo shards init` does.
void fence(const testing::TestDatabase& db, int partition, int partitions) {
    pqxx::connection admin{db.admin_url()};
    pqxx::work txn{admin};
    txn.exec_params("INSERT INTO ordo.partition_fences (partition, partitions) VALUES ($1, $2)",
                    partition, partitions);
    txn.commit();
}

// Many streams read at once refuse, as read_stream does, a stream this shard has nothing of
// on a partition it fences (a reader with an old map), and only that: the same stream read
// from past its start, or a stream that is here, is read.
TEST_F(EventStoreTest, ReadingManyStreamsRefusesAStreamOfAFencedPartitionThatIsNotHere) {
    store_.append("order-here", ExpectedVersion::no_stream(), {event("A", {{"n", 1}})});
    const auto fenced_partition = platform::partition_of("order-gone", 4);
    ASSERT_NE(platform::partition_of("order-here", 4), fenced_partition);
    fence(db_, fenced_partition, 4);
    EXPECT_THROW(store_.read_streams({{"order-here", 1}, {"order-gone", 1}}, 10), PartitionFenced);
    EXPECT_THROW(store_.read_stream("order-gone", 1, 10), PartitionFenced);
    const auto read = store_.read_streams({{"order-here", 1}, {"order-gone", 2}}, 10);
    ASSERT_EQ(read.size(), 2u);
    EXPECT_EQ(read[0].size(), 1u);
    EXPECT_TRUE(read[1].empty());
}

// A snapshot of a stream on a partition this shard fences is not saved (an unlocked command
// saves its snapshot after its append, in a transaction of its own, which a move may have
// fenced meanwhile); one of another partition is.
TEST_F(EventStoreTest, ASnapshotOfAFencedPartitionIsNotSaved) {
    store_.append("order-snap-fenced", ExpectedVersion::no_stream(), {event("A", {})});
    store_.append("order-snap-open", ExpectedVersion::no_stream(), {event("A", {})});
    const auto fenced_partition = platform::partition_of("order-snap-fenced", 4);
    ASSERT_NE(platform::partition_of("order-snap-open", 4), fenced_partition);
    fence(db_, fenced_partition, 4);
    store_.transact([](Session& s) {
        s.save_snapshot("order-snap-fenced", {1, {{"state", 1}}}, 2);
        s.save_snapshot("order-snap-open", {1, {{"state", 1}}}, 2);
    });
    pqxx::connection admin{db_.admin_url()};
    pqxx::nontransaction tx{admin};
    const auto saved = tx.exec(
        "SELECT stream_id FROM ordo.snapshots WHERE stream_id LIKE 'order-snap-%' "
        "ORDER BY stream_id");
    ASSERT_EQ(saved.size(), 1u);
    EXPECT_EQ(saved[0][0].as<std::string>(), "order-snap-open");
}

// An append to a fenced partition is refused, naming the partition, whether its stream is
// here already or new, and whether the append waits for the stream's lock or not; nothing is
// written. A stream of another partition is appended to.
TEST_F(EventStoreTest, AnAppendToAFencedPartitionIsRefusedAndWritesNothing) {
    store_.append("order-fenced-old", ExpectedVersion::no_stream(), {event("A", {})});
    const auto fenced_partition = platform::partition_of("order-fenced-old", 4);
    ASSERT_EQ(platform::partition_of("order-fenced-new-2", 4), fenced_partition);
    ASSERT_NE(platform::partition_of("order-open", 4), fenced_partition);
    fence(db_, fenced_partition, 4);
    // The stream that is there is held by another transaction: a fenced partition is refused
    // before its stream's lock is waited for, or found busy.
    pqxx::connection holder{db_.command_url()};
    pqxx::work holding{holder};
    holding.exec(
        "SELECT version FROM ordo.streams WHERE stream_id = 'order-fenced-old' FOR UPDATE");
    pqxx::connection conn{db_.command_url()};
    {
        pqxx::nontransaction tx{conn};
        tx.exec("SET statement_timeout = 5000");
    }
    for (const std::string stream : {"order-fenced-old", "order-fenced-new-2"}) {
        for (const std::string wait : {"true", "false", "NULL"}) {
            pqxx::nontransaction tx{conn};
            try {
                tx.exec_params("SELECT * FROM ordo.append_events($1, -1, $2::jsonb, " + wait + ")",
                               stream, one_event_json("B", platform::new_uuid()));
                ADD_FAILURE() << stream << " appended to with p_wait " << wait;
            } catch (const pqxx::sql_error& e) {
                EXPECT_EQ(e.sqlstate(), "ORD01") << stream << ", p_wait " << wait;
                EXPECT_NE(std::string{e.what()}.find(
                              "partition " + std::to_string(fenced_partition) + " is not written"),
                          std::string::npos)
                    << e.what();
            }
        }
        EXPECT_THROW(store_.append(stream, ExpectedVersion::any(), {event("C", {})}),
                     PartitionFenced)
            << stream;
    }
    holding.commit();
    pqxx::connection admin{db_.admin_url()};
    pqxx::nontransaction look{admin};
    EXPECT_EQ(
        look.exec1("SELECT count(*) FROM ordo.events WHERE stream_id LIKE 'order-fenced-%'")[0]
            .as<int>(),
        1);
    EXPECT_EQ(
        look.exec1("SELECT count(*) FROM ordo.streams WHERE stream_id LIKE 'order-fenced-%'")[0]
            .as<int>(),
        1);
    EXPECT_EQ(
        store_.append("order-open", ExpectedVersion::no_stream(), {event("A", {})}).last_version,
        1);
}

TEST_F(EventStoreTest, ReadAllWaitsForAnOpenTransactionAndNeverSkipsIt) {
    store_.append("order-before", ExpectedVersion::any(), {event("A", {})});
    auto first = read_all_until(store_, {}, 1);
    ASSERT_EQ(first.size(), 1u);
    EXPECT_EQ(first[0].stream_id, "order-before");

    // A writer that has appended but not committed holds the horizon.
    pqxx::connection slow_conn{db_.command_url()};
    EventStore::prepare(slow_conn);
    pqxx::work slow{slow_conn};
    EventStore::append(slow, "order-slow", ExpectedVersion::any(), {event("Slow", {})});

    store_.append("order-after-1", ExpectedVersion::any(), {event("B", {})});
    store_.append("order-after-2", ExpectedVersion::any(), {event("C", {})});

    EXPECT_TRUE(store_.read_all(first.back().checkpoint(), 100).empty())
        << "events committed after the open transaction began are held back";
    {
        // Readers learn that committed events are waiting, so they look again soon, and
        // for how long: the age grows while the open transaction holds them back.
        pqxx::connection c{db_.command_url()};
        ASSERT_TRUE(testing::eventually([&] {
            pqxx::nontransaction tx{c};
            return EventStore::hidden_for(tx).value_or(0) >= 0.3;
        }));
    }

    {
        // Asked after a read that found nothing: only hidden events are left to read.
        pqxx::connection c{db_.command_url()};
        pqxx::nontransaction tx{c};
        const auto unread = EventStore::unread_after(tx, first.back().checkpoint());
        EXPECT_FALSE(unread.readable);
        EXPECT_GE(unread.hidden_for.value_or(-1), 0.3);
    }

    slow.commit();
    {
        // The horizon passed, which notified no one: the reader at the same place learns
        // that it has events to read now. (Other tests' transactions may hold the horizon
        // for a moment.)
        pqxx::connection c{db_.command_url()};
        EXPECT_TRUE(testing::eventually([&] {
            pqxx::nontransaction tx{c};
            return EventStore::unread_after(tx, first.back().checkpoint()).readable;
        }));
    }
    auto rest = read_all_until(store_, first.back().checkpoint(), 3);
    ASSERT_EQ(rest.size(), 3u);
    EXPECT_EQ(rest[0].stream_id, "order-slow");
    EXPECT_EQ(rest[1].stream_id, "order-after-1");
    EXPECT_EQ(rest[2].stream_id, "order-after-2");
    EXPECT_TRUE(store_.read_all(rest.back().checkpoint(), 100).empty());
    {
        pqxx::connection c{db_.command_url()};
        pqxx::nontransaction tx{c};
        const auto unread = EventStore::unread_after(tx, rest.back().checkpoint());
        EXPECT_FALSE(unread.readable);
        EXPECT_FALSE(unread.hidden_for);
    }
    // And nothing is hidden once the horizon has passed (other tests' transactions hold it
    // too, for a moment).
    EXPECT_TRUE(testing::eventually([&] {
        pqxx::connection c{db_.command_url()};
        pqxx::read_transaction tx{c};
        return !EventStore::hidden_for(tx);
    }));
}

TEST_F(EventStoreTest, ReadAllUnderConcurrentWritersSeesEveryEventOnceInCommitOrder) {
    constexpr int kWriters = 6;
    constexpr int kAppendsEach = 60;
    constexpr std::size_t kTotal = kWriters * kAppendsEach;
    std::atomic<bool> writing{true};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            pqxx::connection conn{db_.command_url()};
            EventStore::prepare(conn);
            for (int i = 0; i < kAppendsEach; ++i) {
                // Transactions of varied length commit out of position order.
                pqxx::work txn{conn};
                EventStore::append(txn, "order-w" + std::to_string(w), ExpectedVersion::any(),
                                   {event("E", {{"w", w}, {"i", i}})});
                if (i % 7 == w % 7) txn.exec("SELECT pg_sleep(0.01)");
                txn.commit();
            }
        });
    }
    std::set<std::int64_t> seen;
    std::vector<Checkpoint> order;
    Checkpoint at{};
    auto take = [&](const std::vector<RecordedEvent>& events) {
        for (const auto& e : events) {
            EXPECT_TRUE(seen.insert(e.position).second) << "event " << e.position << " repeated";
            EXPECT_GT(e.checkpoint(), at);
            at = e.checkpoint();
            order.push_back(at);
        }
    };
    std::thread reader([&] {
        while (writing) take(store_.read_all(at, 50));
    });
    for (auto& t : writers) t.join();
    writing = false;
    reader.join();
    take(read_all_until(store_, at, kTotal - seen.size()));
    EXPECT_EQ(seen.size(), kTotal);
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end()));
}

TEST_F(EventStoreTest, EvenTheOwnerCannotRewriteHistory) {
    store_.append("order-z", ExpectedVersion::any(), {event("A", {{"v", 1}})});
    pqxx::connection owner{db_.migrator_url()};
    auto refused = [&](const std::string& sql) {
        try {
            pqxx::work tx{owner};
            tx.exec(sql);
            tx.commit();
            return false;
        } catch (const pqxx::sql_error& e) {
            return std::string_view{e.what()}.find("append-only") != std::string_view::npos;
        }
    };
    EXPECT_TRUE(refused("UPDATE ordo.events SET payload = '{}'"));
    EXPECT_TRUE(refused("DELETE FROM ordo.events"));
    EXPECT_TRUE(refused("TRUNCATE ordo.events"));
    EXPECT_EQ(store_.read_stream("order-z", 1, 10).at(0).payload["v"], 1);
}

// Projector sessions commit asynchronously, and an asynchronous commit is visible before it
// is on disk. A transaction of theirs that appends events (the saga intake's) must still
// commit durably, or a crash of PostgreSQL could forget events the relay had published.
// What PostgreSQL consults at commit is the transaction's synchronous_commit.
TEST_F(EventStoreTest, ATransactionThatAppendsCommitsDurablyWhateverItsSessionAsked) {
    pqxx::connection conn{db_.command_url()};
    EventStore::prepare(conn);
    auto setting = [](pqxx::transaction_base& tx) {
        return tx.exec1("SHOW synchronous_commit")[0].as<std::string>();
    };
    std::string durable;  // the stack's own: on, or remote_apply on a synchronous pair
    {
        pqxx::nontransaction setup{conn};
        durable = setting(setup);
        ASSERT_NE(durable, "off");
        setup.exec("SET synchronous_commit = off");
    }
    {
        pqxx::work tx{conn};
        tx.exec("SELECT 1 FROM ordo.streams LIMIT 1");
        EXPECT_EQ(setting(tx), "off") << "a transaction that appends nothing keeps its choice";
        EventStore::append(tx, "order-durable", ExpectedVersion::any(), {event("A", {})});
        EXPECT_EQ(setting(tx), durable);
        tx.commit();
    }
    {
        pqxx::work tx{conn};
        EXPECT_EQ(setting(tx), "off") << "only the appending transaction is changed";
        tx.exec("SAVEPOINT before");
        EventStore::append(tx, "order-durable", ExpectedVersion::any(), {event("B", {})});
        EXPECT_EQ(setting(tx), durable);
        tx.exec("ROLLBACK TO SAVEPOINT before");
        EXPECT_EQ(setting(tx), "off") << "undone with the rows it was made for";
    }
    EXPECT_EQ(store_.read_stream("order-durable", 1, 10).size(), 1u);
}

// A young store's statistics say its tables are empty, and a pooled session keeps the plans
// it made then: an append's look for already-stored event ids must still be index probes, or
// every append reads the whole events table. Counted in one transaction of one session, from
// an empty store to hundreds of appends and a replay.
TEST_F(EventStoreTest, AppendsProbeTheIndexesWhateverTheStatisticsSay) {
    pqxx::connection conn{db_.command_url()};
    pqxx::work tx{conn};
    auto append = [&](const std::string& stream, const std::string& batch) {
        return tx.exec_params("SELECT out_outcome FROM ordo.append_events($1, -1, $2::jsonb)",
                              stream, batch);
    };
    std::string last;
    for (int i = 0; i < 400; ++i) {
        last = one_event_json("A", platform::new_uuid(), {{"n", i}});
        EXPECT_EQ(append("order-" + std::to_string(i % 50), last)[0][0].as<std::string>(),
                  "appended");
    }
    EXPECT_EQ(append("order-49", last)[0][0].as<std::string>(), "replayed");
    auto scans = tx.exec(
        "SELECT relname, seq_scan FROM pg_stat_xact_user_tables WHERE schemaname = 'ordo' AND "
        "relname IN ('events', 'streams') ORDER BY relname");
    ASSERT_EQ(scans.size(), 2u);
    for (const auto& row : scans) {
        EXPECT_EQ(row[1].as<long>(), 0) << row[0].as<std::string>() << " was scanned";
    }
}

// ordo.append_events without waiting (p_wait false), and the three-argument wrapper the
// services of the release before call (ordo.append_events_nowait): a stream another
// transaction holds answers 'busy' at once and gets nothing; a free one is appended to; the
// default still waits for the lock.
TEST_F(EventStoreTest, AnAppendThatDoesNotWaitAnswersBusyForAHeldStreamAndChangesNothing) {
    store_.append("order-held", ExpectedVersion::no_stream(), {event("A", {})});
    pqxx::connection holder{db_.command_url()};
    pqxx::work holding{holder};
    holding.exec("SELECT version FROM ordo.streams WHERE stream_id = 'order-held' FOR UPDATE");
    pqxx::connection conn{db_.command_url()};
    auto outcome = [&](const std::string& call, const std::string& stream) {
        pqxx::nontransaction tx{conn};
        return tx
            .exec_params1("SELECT out_outcome FROM " + call, stream,
                          one_event_json("B", platform::new_uuid()))[0]
            .as<std::string>();
    };
    const std::string nowait = "ordo.append_events($1, -1, $2::jsonb, false)";
    const std::string wrapper = "ordo.append_events_nowait($1, -1, $2::jsonb)";
    EXPECT_EQ(outcome(nowait, "order-held"), "busy");
    EXPECT_EQ(outcome(wrapper, "order-held"), "busy");
    EXPECT_EQ(outcome(nowait, "order-free"), "appended");
    EXPECT_EQ(outcome(wrapper, "order-free"), "appended");
    // On a free stream, an event id another open transaction is inserting is waited for 50 ms
    // at most: the append then fails, and did nothing.
    const auto one = [](const std::string& id) { return one_event_json("B", id); };
    const auto taken = platform::new_uuid();
    holding.exec_params("SELECT * FROM ordo.append_events('order-other', -1, $1::jsonb)",
                        one(taken));
    {
        pqxx::nontransaction tx{conn};
        tx.exec("SET statement_timeout = 5000");
        try {
            tx.exec_params("SELECT * FROM ordo.append_events('order-free', -1, $1::jsonb, false)",
                           one(taken));
            ADD_FAILURE() << "appended with an event id another transaction is inserting";
        } catch (const pqxx::sql_error& e) {
            EXPECT_EQ(e.sqlstate(), "55P03") << e.what();  // lock_not_available: the bound
        }
    }
    // The default waits for the stream's lock, and so does a NULL for p_wait.
    for (const std::string call : {"ordo.append_events('order-held', -1, $1::jsonb)",
                                   "ordo.append_events('order-held', -1, $1::jsonb, NULL)"}) {
        pqxx::nontransaction tx{conn};
        tx.exec("SET statement_timeout = 200");
        try {
            tx.exec_params("SELECT * FROM " + call, one_event_json("B", platform::new_uuid()));
            ADD_FAILURE() << call << " did not wait";
        } catch (const pqxx::sql_error& e) {
            EXPECT_EQ(e.sqlstate(), "57014") << call << ": " << e.what();  // query_canceled
        }
    }
    holding.commit();
    EXPECT_EQ(store_.stream_version("order-held"), 1);
    EXPECT_EQ(store_.stream_version("order-free"), 2);
    // A table lock (a migration's, say), which the statement takes before any row's, is waited
    // for 50 ms at most too.
    {
        pqxx::connection admin{db_.admin_url()};
        pqxx::work migrating{admin};
        migrating.exec("LOCK TABLE ordo.streams IN ACCESS EXCLUSIVE MODE");
        pqxx::nontransaction tx{conn};
        tx.exec("SET statement_timeout = 5000");
        try {
            tx.exec_params("SELECT * FROM ordo.append_events('order-free', -1, $1::jsonb, false)",
                           one(platform::new_uuid()));
            ADD_FAILURE() << "appended while ordo.streams was locked";
        } catch (const pqxx::sql_error& e) {
            EXPECT_EQ(e.sqlstate(), "55P03") << e.what();  // not 57014: it did not wait 5 s
        }
    }
}

TEST_F(EventStoreTest, AnAppendWakesListeners) {
    pqxx::connection listening{db_.command_url()};
    int received = 0;
    eventstore::AppendSubscription appends{listening, [&] { ++received; }};
    // Nothing appended: a wait only times out.
    appends.await(std::chrono::milliseconds(50));
    EXPECT_EQ(received, 0);
    AppendNotifier notifier{db_.command_url(), platform::Logger::null_logger()};
    EventStore store{pool_, &notifier};
    store.append("order-n", ExpectedVersion::any(), {event("A", {})});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (received == 0 && std::chrono::steady_clock::now() < deadline) {
        appends.await(std::chrono::seconds(1));
    }
    EXPECT_GE(received, 1);
}

TEST_F(EventStoreTest, APoolWhoseIdleConnectionsTheServerDroppedFailsNoOperation) {
    // Four connections open and idle in the pool.
    {
        std::vector<Pool::Lease> held;
        for (int i = 0; i < 4; ++i) held.push_back(pool_.acquire());
    }
    store_.append("order-p", ExpectedVersion::any(), {event("A", {})});
    // The server drops them all (an operator's pg_terminate_backend, a restart), and they
    // are gone from the server before the next operation.
    pqxx::connection admin{db_.admin_url()};
    auto command_backends = [&] {
        pqxx::nontransaction tx{admin};
        return tx
            .exec_params1(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = $1 AND usename = "
                "'ordo_command'",
                db_.name())[0]
            .as<int>();
    };
    ASSERT_EQ(command_backends(), 4);
    {
        pqxx::nontransaction tx{admin};
        tx.exec_params(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND usename = 'ordo_command'",
            db_.name());
    }
    ASSERT_TRUE(testing::eventually([&] { return command_backends() == 0; }));
    // Not one operation fails on a dropped connection: the pool closes them unused and
    // opens new ones.
    for (const char* type : {"B", "C", "D", "E"}) {
        EXPECT_NO_THROW(store_.append("order-p", ExpectedVersion::any(), {event(type, {})}))
            << type;
    }
    EXPECT_EQ(store_.stream_version("order-p"), 5);
}

}  // namespace
}  // namespace ordo::eventstore
