#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::eventstore {
namespace {

using platform::pg::Pool;
using platform::pg::PoolOptions;

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

TEST_F(EventStoreTest, AppendsAndReadsAStreamInVersionOrder) {
    auto first =
        store_.append("order-1", ExpectedVersion::no_stream(),
                      {event("OrderPlaced", {{"n", 1}}), event("OrderConfirmed", {{"n", 2}})});
    EXPECT_EQ(first.first_version, 1);
    EXPECT_EQ(first.last_version, 2);
    EXPECT_FALSE(first.replayed);
    ASSERT_EQ(first.positions.size(), 2u);
    EXPECT_LT(first.positions[0], first.positions[1]);

    auto second = store_.append("order-1", ExpectedVersion::exact(2), {event("Note", {{"n", 3}})});
    EXPECT_EQ(second.last_version, 3);

    auto events = store_.read_stream("order-1", 2, 100);
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[0].version, 2);
    EXPECT_EQ(events[0].type, "OrderConfirmed");
    EXPECT_EQ(events[1].payload["n"], 3);
    EXPECT_EQ(events[1].category, "order");
    EXPECT_EQ(store_.stream_version("order-1"), 3);
    EXPECT_EQ(store_.stream_version("order-unknown"), 0);
}

TEST_F(EventStoreTest, KeepsEveryMetadataField) {
    auto e = event("OrderPlaced", {{"order_id", "o-1"}});
    e.metadata = {"trace", "span", "corr", "cause", "cmd", "alice"};
    store_.append("order-meta", ExpectedVersion::any(), {e});
    auto read = store_.read_stream("order-meta", 1, 10).at(0);
    EXPECT_EQ(read.metadata.trace_id, "trace");
    EXPECT_EQ(read.metadata.span_id, "span");
    EXPECT_EQ(read.metadata.correlation_id, "corr");
    EXPECT_EQ(read.metadata.causation_id, "cause");
    EXPECT_EQ(read.metadata.command_id, "cmd");
    EXPECT_EQ(read.metadata.actor, "alice");
    EXPECT_EQ(read.event_id, e.event_id);
}

TEST_F(EventStoreTest, ConflictCarriesTheActualVersion) {
    store_.append("account-a", ExpectedVersion::no_stream(), {event("FundsDeposited", {})});
    try {
        store_.append("account-a", ExpectedVersion::no_stream(), {event("FundsDeposited", {})});
        FAIL() << "expected a conflict";
    } catch (const ConcurrencyConflict& c) {
        EXPECT_EQ(c.actual_version(), 1);
    }
    EXPECT_THROW(store_.append("account-a", ExpectedVersion::exact(5), {event("X", {})}),
                 ConcurrencyConflict);
    EXPECT_EQ(store_.stream_version("account-a"), 1);
}

TEST_F(EventStoreTest, EightWritersWithExactVersionsProduceOneWinnerPerVersion) {
    constexpr int kWriters = 8;
    constexpr int kEventsEach = 25;
    std::mutex mutex;
    std::map<std::int64_t, int> winner;  // version -> writer
    std::atomic<int> conflicts{0};
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            int written = 0;
            while (written < kEventsEach) {
                auto version = store_.stream_version("inventory-hot");
                auto expected =
                    version == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exact(version);
                try {
                    auto r = store_.append("inventory-hot", expected,
                                           {event("StockReceived", {{"writer", w}})});
                    std::lock_guard lock{mutex};
                    EXPECT_TRUE(winner.emplace(r.last_version, w).second)
                        << "version " << r.last_version << " won twice";
                    ++written;
                } catch (const ConcurrencyConflict&) {
                    ++conflicts;
                }
            }
        });
    }
    for (auto& t : writers) t.join();

    auto events = store_.read_stream("inventory-hot", 1, 10'000);
    ASSERT_EQ(events.size(), static_cast<std::size_t>(kWriters * kEventsEach));
    for (std::size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].version, static_cast<std::int64_t>(i + 1));
        EXPECT_EQ(events[i].payload["writer"], winner.at(events[i].version));
    }
    EXPECT_EQ(winner.size(), events.size());
}

TEST_F(EventStoreTest, ReAppendingStoredEventsReplaysInEveryMode) {
    auto a = event("StockReceived", {{"quantity", 5}});
    auto b = event("StockReceived", {{"quantity", 6}});
    auto c = event("StockReceived", {{"quantity", 7}});

    auto original = store_.append("inventory-i", ExpectedVersion::no_stream(), {a, b});
    auto again = store_.append("inventory-i", ExpectedVersion::no_stream(), {a, b});
    EXPECT_TRUE(again.replayed);
    EXPECT_EQ(again.positions, original.positions);
    EXPECT_EQ(again.first_version, 1);
    EXPECT_EQ(again.last_version, 2);

    auto third = store_.append("inventory-i", ExpectedVersion::exact(2), {c});
    auto third_again = store_.append("inventory-i", ExpectedVersion::exact(2), {c});
    EXPECT_TRUE(third_again.replayed);
    EXPECT_EQ(third_again.positions, third.positions);
    EXPECT_EQ(third_again.last_version, 3);

    auto any_again = store_.append("inventory-i", ExpectedVersion::any(), {b});
    EXPECT_TRUE(any_again.replayed);
    EXPECT_EQ(any_again.first_version, 2);
    EXPECT_EQ(any_again.positions, std::vector<std::int64_t>{original.positions[1]});

    EXPECT_EQ(store_.read_stream("inventory-i", 1, 100).size(), 3u);
    EXPECT_EQ(store_.stream_version("inventory-i"), 3);
}

TEST_F(EventStoreTest, ReplayAtAnotherExpectedVersionIsAConflict) {
    auto a = event("StockReceived", {{"quantity", 5}});
    store_.append("inventory-j", ExpectedVersion::no_stream(), {a});
    store_.append("inventory-j", ExpectedVersion::exact(1), {event("StockReceived", {})});
    EXPECT_THROW(store_.append("inventory-j", ExpectedVersion::exact(2), {a}), ConcurrencyConflict);
}

TEST_F(EventStoreTest, ReusedIdWithOtherContentIsRefused) {
    auto a = event("StockReceived", {{"quantity", 5}});
    store_.append("inventory-k", ExpectedVersion::any(), {a});

    auto changed = a;
    changed.payload = {{"quantity", 6}};
    EXPECT_THROW(store_.append("inventory-k", ExpectedVersion::any(), {changed}), EventIdReused);

    auto other_stream = a;
    EXPECT_THROW(store_.append("inventory-other", ExpectedVersion::any(), {other_stream}),
                 EventIdReused);

    // A batch that repeats only part of what is stored is not a replay either.
    EXPECT_THROW(store_.append("inventory-k", ExpectedVersion::any(),
                               {a, event("StockReceived", {{"quantity", 1}})}),
                 EventIdReused);
    EXPECT_EQ(store_.stream_version("inventory-k"), 1);
    EXPECT_EQ(store_.stream_version("inventory-other"), 0);
}

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

TEST_F(EventStoreTest, RefusesInvalidInputBeforeTouchingTheDatabase) {
    EXPECT_THROW(store_.append("order-x", ExpectedVersion::any(), {}), platform::InvalidInput);
    EXPECT_THROW(store_.append("nocategory", ExpectedVersion::any(), {event("X", {})}),
                 platform::InvalidInput);
    EXPECT_THROW(store_.append("order-bad id", ExpectedVersion::any(), {event("X", {})}),
                 platform::InvalidInput);
    auto bad_id = event("X", {});
    bad_id.event_id = "not-a-uuid";
    EXPECT_THROW(store_.append("order-x", ExpectedVersion::any(), {bad_id}),
                 platform::InvalidInput);
    auto twice = event("X", {});
    EXPECT_THROW(store_.append("order-x", ExpectedVersion::any(), {twice, twice}),
                 platform::InvalidInput);
    EXPECT_THROW(ExpectedVersion::exact(0), platform::InvalidInput);
    EXPECT_EQ(store_.stream_version("order-x"), 0);
}

// The horizon is cluster-wide: transactions of tests running in parallel in other
// databases hold it back too. So reads poll until the expected events are visible.
std::vector<RecordedEvent> read_all_until(EventStore& store, Checkpoint after, std::size_t count) {
    std::vector<RecordedEvent> out;
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
        auto batch = store.read_all(after, count - out.size());
        if (batch.empty()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        after = batch.back().checkpoint();
        out.insert(out.end(), batch.begin(), batch.end());
    }
    return out;
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
        // Readers learn that committed events are waiting, so they look again soon.
        pqxx::connection c{db_.command_url()};
        pqxx::read_transaction tx{c};
        EXPECT_TRUE(EventStore::hidden_by_horizon(tx));
    }

    slow.commit();
    auto rest = read_all_until(store_, first.back().checkpoint(), 3);
    ASSERT_EQ(rest.size(), 3u);
    EXPECT_EQ(rest[0].stream_id, "order-slow");
    EXPECT_EQ(rest[1].stream_id, "order-after-1");
    EXPECT_EQ(rest[2].stream_id, "order-after-2");
    EXPECT_TRUE(store_.read_all(rest.back().checkpoint(), 100).empty());
    // And nothing is hidden once the horizon has passed (other tests' transactions hold it
    // too, for a moment).
    EXPECT_TRUE(testing::eventually([&] {
        pqxx::connection c{db_.command_url()};
        pqxx::read_transaction tx{c};
        return !EventStore::hidden_by_horizon(tx);
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

TEST_F(EventStoreTest, PoolRecoversAfterItsConnectionsAreTerminated) {
    store_.append("order-p", ExpectedVersion::any(), {event("A", {})});
    {
        pqxx::connection admin{db_.admin_url()};
        pqxx::nontransaction tx{admin};
        tx.exec_params(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = $1 AND usename = 'ordo_command'",
            db_.name());
    }
    // The first use of a dead connection fails as a transient error and is discarded ...
    try {
        store_.append("order-p", ExpectedVersion::any(), {event("B", {})});
    } catch (...) {
        EXPECT_EQ(platform::pg::classify(std::current_exception()),
                  platform::FailureKind::transient);
    }
    // ... and the pool opens a new one.
    store_.append("order-p", ExpectedVersion::any(), {event("C", {})});
    EXPECT_GE(store_.stream_version("order-p"), 2);
}

}  // namespace
}  // namespace ordo::eventstore
