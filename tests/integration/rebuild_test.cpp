// Rebuilds: rebuilt models equal the live ones and the runtime continues exactly once; refusals,
// readers kept on the old model until the swap, dry runs.

#include <gtest/gtest.h>

#include <future>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "projections/read_models.hpp"
#include "projections/rebuild.hpp"
#include "projections/runtime.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/projector.hpp"
#include "tests/support/test_database.hpp"
#include "tests/support/upcasters.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr int kPartitions = 4;
const std::vector<std::string> kProjections{"orders", "inventory", "accounts", "traces"};
const std::vector<std::string> kTables{"read.orders", "read.inventory", "read.accounts",
                                       "read.trace_events"};

// A history with the corners of each read model: an account charged before its first
// deposit (no row until the deposit) and one never opened, an order changed before it was
// placed, cancellation reasons kept through later events, events without a trace id. Many
// small appends, so batches of the rebuild cut through streams.
class History {
   public:
    explicit History(const TestDatabase& db)
        : pool_{{.url = db.command_url(),
                 .size = 2,
                 .preparers = {&eventstore::EventStore::prepare}}},
          store_{pool_} {}

    void append(const std::string& stream, const std::string& type, json payload,
                bool traced = true, int schema_version = 1) {
        platform::TraceContext trace = platform::new_trace();
        eventstore::Metadata metadata;
        if (traced) {
            metadata = {trace.trace_id_hex(),
                        trace.span_id_hex(),
                        "corr-" + stream,
                        "cause-" + std::to_string(++count_),
                        "",
                        "test"};
        }
        store_.append(stream, eventstore::ExpectedVersion::any(),
                      {{platform::new_uuid(), type, std::move(payload), metadata, schema_version}});
    }

    void round(int from, int to) {
        for (int i = from; i < to; ++i) {
            const auto sku = "sku-" + std::to_string(i % 7);
            const auto order = "o-" + std::to_string(i);
            const auto account = "acc-" + std::to_string(i % 5);
            append("inventory-" + sku, "StockReceived", {{"sku", sku}, {"quantity", i + 3}},
                   i % 4 != 0);
            append("account-" + account, "FundsDeposited",
                   {{"account_id", account}, {"amount", 100 + i}});
            // Orders of both schema versions, as a store written before and after prices named
            // their currency holds them: the live model and the rebuild read both upcast.
            const json price = i % 2 == 0 ? json(10) : json{{"amount", 10}, {"currency", "USD"}};
            append(
                "order-" + order, "OrderPlaced",
                {{"order_id", order},
                 {"customer_id", "c-" + std::to_string(i % 3)},
                 {"account_id", account},
                 {"lines", json::array({{{"sku", sku}, {"quantity", 1}, {"unit_price", price}}})},
                 {"total", 10}},
                true, i % 2 == 0 ? 1 : 2);
            append("inventory-" + sku, "StockReserved",
                   {{"sku", sku}, {"order_id", order}, {"quantity", 1}});
            append("account-" + account, "PaymentAuthorized",
                   {{"account_id", account}, {"order_id", order}, {"amount", 10}});
            if (i % 3 == 0) {
                append("order-" + order, "OrderCancellationRequested",
                       {{"order_id", order}, {"reason", "changed mind"}});
                append("order-" + order, "OrderCancelled",
                       {{"order_id", order}, {"reason", "reason " + std::to_string(i)}});
                append("inventory-" + sku, "ReservationReleased",
                       {{"sku", sku}, {"order_id", order}, {"quantity", 1}});
                append("account-" + account, "AuthorizationVoided",
                       {{"account_id", account}, {"order_id", order}, {"amount", 10}});
                // A status after the cancellation keeps its reason.
                append("order-" + order, "OrderConfirmed", {{"order_id", order}}, false);
            } else {
                append("inventory-" + sku, "ReservationCommitted",
                       {{"sku", sku}, {"order_id", order}, {"quantity", 1}});
                append("account-" + account, "PaymentCaptured",
                       {{"account_id", account}, {"order_id", order}, {"amount", 10}});
                append("order-" + order, "OrderConfirmed", {{"order_id", order}});
            }
        }
        const auto tag = std::to_string(from);
        // Charged before its first deposit: the hold is lost, as apply() loses it.
        append("account-early" + tag, "PaymentAuthorized",
               {{"account_id", "early" + tag}, {"order_id", "x"}, {"amount", 7}});
        append("account-early" + tag, "FundsDeposited",
               {{"account_id", "early" + tag}, {"amount", 50}});
        append("account-never" + tag, "PaymentAuthorized",
               {{"account_id", "never" + tag}, {"order_id", "x"}, {"amount", 7}});
        // Confirmed before it was placed: the first change meets no row.
        append("order-ghost" + tag, "OrderConfirmed", {{"order_id", "ghost" + tag}});
        append("order-ghost" + tag, "OrderPlaced",
               {{"order_id", "ghost" + tag},
                {"customer_id", "c-ghost"},
                {"account_id", "acc-0"},
                {"lines", json::array()},
                {"total", 0}});
    }

   private:
    platform::pg::Pool pool_;
    eventstore::EventStore store_;
    int count_ = 0;
};

std::vector<std::string> rows(const std::string& url, const std::string& sql) {
    pqxx::connection c{url};
    pqxx::read_transaction tx{c};
    std::vector<std::string> out;
    for (const auto& r : tx.exec(sql)) out.push_back(r[0].is_null() ? "NULL" : r[0].c_str());
    return out;
}

// Everything a reader can tell about a read model: its rows, its checkpoints, and the
// shape of its tables (indexes, constraints, grants).
struct ModelState {
    std::map<std::string, std::vector<std::string>> tables;
    std::vector<std::string> checkpoints;
    std::vector<std::string> shape;
    bool operator==(const ModelState&) const = default;
};

ModelState state_of(const TestDatabase& db) {
    ModelState s;
    for (const auto& t : kTables) {
        s.tables[t] = rows(db.admin_url(), "SELECT x::text FROM " + t + " x ORDER BY 1");
        s.shape.push_back(t);
        for (auto& r :
             rows(db.admin_url(),
                  "SELECT indexname || ': ' || indexdef FROM pg_indexes WHERE schemaname || '.' "
                  "|| tablename = '" +
                      t + "' ORDER BY 1")) {
            s.shape.push_back(r);
        }
        for (auto& r : rows(db.admin_url(),
                            "SELECT conname || ': ' || pg_get_constraintdef(oid) FROM "
                            "pg_constraint WHERE conrelid = '" +
                                t + "'::regclass ORDER BY 1")) {
            s.shape.push_back(r);
        }
        for (auto& r : rows(db.admin_url(),
                            "SELECT a.grantee::regrole || ' ' || a.privilege_type FROM pg_class "
                            "c, aclexplode(c.relacl) a WHERE c.oid = '" +
                                t + "'::regclass ORDER BY 1")) {
            s.shape.push_back(r);
        }
        for (auto& r :
             rows(db.admin_url(), "SELECT relowner::regrole::text FROM pg_class WHERE oid = '" + t +
                                      "'::regclass")) {
            s.shape.push_back("owner " + r);
        }
    }
    s.checkpoints = rows(db.admin_url(),
                         "SELECT projection || '/' || partition || ' ' || transaction_id || ' ' "
                         "|| global_position FROM ordo.projection_checkpoints ORDER BY 1");
    return s;
}

void expect_same(const ModelState& got, const ModelState& want, const std::string& context) {
    for (const auto& [table, rows] : want.tables) {
        EXPECT_EQ(got.tables.at(table), rows) << table << " after " << context;
    }
    EXPECT_EQ(got.checkpoints, want.checkpoints) << "after " << context;
    EXPECT_EQ(got.shape, want.shape) << "after " << context;
}

// Every partition of every projection is at the head of the store.
bool caught_up(const TestDatabase& db) {
    return scalar(db.admin_url(),
                  "SELECT count(*) FROM ordo.projection_checkpoints c, (SELECT transaction_id, "
                  "global_position FROM ordo.events ORDER BY transaction_id DESC, "
                  "global_position DESC LIMIT 1) h WHERE (c.transaction_id, c.global_position) = "
                  "(h.transaction_id, h.global_position)") ==
           static_cast<std::int64_t>(kProjections.size()) * kPartitions;
}

void run_projector_until_caught_up(const TestDatabase& db, const std::string& instance) {
    Projector projector{db, instance};
    ASSERT_TRUE(eventually([&] { return caught_up(db); }));
}

projections::RebuildOptions options_for(const TestDatabase& db) {
    return {.database_url = db.migrator_url(),
            .partitions = kPartitions,
            // The projectors of these tests have stopped, but their heartbeats are still
            // fresh: only the advisory locks of a running one count here.
            .owner_ttl = 0s,
            .upcasters = &upcasters()};
}

// A rebuild replays up to the horizon it finds at its start; waiting until every event
// appended so far is below it makes what it replays the whole history.
projections::RebuildReport rebuild(const std::string& projection,
                                   const projections::RebuildOptions& options) {
    EXPECT_TRUE(eventually([&] { return store_settled(options.database_url); }));
    platform::SystemClock clock;
    return projections::rebuild(
        projection, [](const std::string& schema) { return projections::read_models(schema); },
        options, clock, platform::Logger::null_logger());
}

TEST(Rebuild, RebuiltModelsEqualTheLiveOnesRowForRowAndTheRuntimeContinuesExactlyOnce) {
    TestDatabase db;
    History history{db};
    history.round(0, 30);
    run_projector_until_caught_up(db, "p-live");
    const auto live = state_of(db);
    ASSERT_GT(live.tables.at("read.orders").size(), 30u);
    ASSERT_GT(live.tables.at("read.trace_events").size(), 100u);

    // Bulk and event by event, in batches that cut streams and in one batch: every way
    // gives the rows the live runtime gave, with the same tables, grants and checkpoints.
    for (bool bulk : {true, false}) {
        for (std::size_t batch : {std::size_t{7}, std::size_t{100'000}}) {
            for (const auto& projection : kProjections) {
                auto options = options_for(db);
                options.bulk = bulk;
                options.batch = batch;
                auto report = rebuild(projection, options);
                EXPECT_TRUE(report.swapped);
                EXPECT_EQ(report.bulk, bulk);
                EXPECT_EQ(report.applied, report.plan.events);
                expect_same(state_of(db), live,
                            projection + (bulk ? " bulk" : " event by event") + ", batch " +
                                std::to_string(batch));
                if (HasFailure()) return;
            }
        }
    }
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM pg_namespace WHERE nspname LIKE 'rebuild\\_%'"),
              0);
    // The query service's role reads the new tables.
    for (const auto& t : kTables) {
        EXPECT_EQ(scalar(db.query_url(), "SELECT count(*) FROM " + t),
                  static_cast<std::int64_t>(live.tables.at(t).size()))
            << t;
    }

    // More events after the rebuild: the runtime continues exactly after the rebuilt
    // checkpoints, so its model equals a rebuild from scratch.
    history.round(30, 45);
    run_projector_until_caught_up(db, "p-after");
    const auto continued = state_of(db);
    EXPECT_NE(continued, live);
    for (const auto& projection : kProjections) rebuild(projection, options_for(db));
    expect_same(state_of(db), continued, "a rebuild of the continued models");
    // Stock adds up to what the events say, once each.
    EXPECT_EQ(scalar(db.admin_url(), "SELECT sum(on_hand) FROM read.inventory"),
              scalar(db.admin_url(),
                     "SELECT sum(CASE event_type WHEN 'StockReceived' THEN (payload->>'quantity')"
                     "::bigint WHEN 'ReservationCommitted' THEN -(payload->>'quantity')::bigint "
                     "ELSE 0 END) FROM ordo.events WHERE category = 'inventory'"));
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM read.accounts WHERE account_id LIKE "
                     "'never%'"),
              0);
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM read.orders WHERE order_id LIKE 'ghost%' AND status = "
                     "'pending'"),
              2);
}

TEST(Rebuild, RefusesWhileALiveProjectorOwnsItUnlessToldToWaitOrForce) {
    TestDatabase db;
    History history{db};
    history.round(0, 10);
    auto projector = std::make_unique<Projector>(db, "p-owner");
    ASSERT_TRUE(eventually([&] { return caught_up(db); }));
    const auto before = state_of(db);

    try {
        rebuild("orders", options_for(db));
        FAIL() << "rebuilt while a projector owned the projection";
    } catch (const projections::RebuildRefused& e) {
        EXPECT_NE(std::string{e.what()}.find("owned by a live projector"), std::string::npos)
            << e.what();
        EXPECT_NE(std::string{e.what()}.find("--wait"), std::string::npos) << e.what();
    }
    expect_same(state_of(db), before, "a refused rebuild");
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM pg_namespace WHERE nspname = 'rebuild_orders'"),
              0);

    // Forced, it rebuilds under the running projector, which carries on from the swapped
    // checkpoints: still exactly once.
    auto forced = options_for(db);
    forced.force = true;
    EXPECT_TRUE(rebuild("orders", forced).swapped);
    history.round(10, 15);
    ASSERT_TRUE(eventually([&] { return caught_up(db); }));

    // Told to wait, it starts once the projector is gone.
    auto waiting = options_for(db);
    waiting.wait = true;
    waiting.wait_timeout = 60s;
    auto done = std::async(std::launch::async, [&] { return rebuild("orders", waiting); });
    // It cannot finish while the projector holds its slots, however long that is.
    EXPECT_EQ(done.wait_for(1s), std::future_status::timeout);
    projector.reset();  // its session, and the advisory locks on it, close
    EXPECT_TRUE(done.get().swapped);
    const auto after = state_of(db);
    for (const auto& projection : kProjections) rebuild(projection, options_for(db));
    expect_same(state_of(db), after, "rebuilds after the forced and the waiting one");
}

// Found by the soak: right after its projectors stopped cleanly, a rebuild was refused as if
// they still owned the projection, until their heartbeats aged (owner_ttl, 10 s by default).
TEST(Rebuild, RunsRightAfterItsProjectorsStoppedCleanly) {
    TestDatabase db;
    History history{db};
    history.round(0, 10);
    auto options = Projector::options(db, "p-stopping", kPartitions);
    options.instance_ttl = 300s;
    auto projector = std::make_unique<Projector>(options, projections::read_models());
    ASSERT_TRUE(eventually([&] { return caught_up(db); }));
    projector.reset();  // stopped cleanly

    auto rebuild_options = options_for(db);
    rebuild_options.owner_ttl = 300s;  // a heartbeat this old still counts: only the goodbye helps
    EXPECT_TRUE(rebuild("orders", rebuild_options).swapped);
}

TEST(Rebuild, ReadersSeeTheOldModelUntilTheSwapWhichWaitsForThem) {
    TestDatabase db;
    History history{db};
    history.round(0, 5);
    run_projector_until_caught_up(db, "p-readers");
    const auto before = scalar(db.admin_url(), "SELECT count(*) FROM read.orders");
    history.round(5, 9);  // in the store, not yet in the live model

    // A query service transaction that has read the old table holds it until it ends.
    pqxx::connection reader{db.query_url()};
    pqxx::work query{reader};
    EXPECT_EQ(query.exec1("SELECT count(*) FROM read.orders")[0].as<std::int64_t>(), before);

    auto options = options_for(db);
    options.lock_timeout = 100ms;
    options.swap_attempts = 1000;
    auto done = std::async(std::launch::async, [&] { return rebuild("orders", options); });
    // No swap while the reader holds the old table, however long it takes.
    EXPECT_EQ(done.wait_for(2s), std::future_status::timeout);
    EXPECT_EQ(query.exec1("SELECT count(*) FROM read.orders")[0].as<std::int64_t>(), before);
    query.commit();
    EXPECT_TRUE(done.get().swapped);
    EXPECT_EQ(scalar(db.query_url(), "SELECT count(*) FROM read.orders"), before + 4 + 1);
}

TEST(Rebuild, DryRunReportsThePlanAndChangesNothing) {
    TestDatabase db;
    History history{db};
    history.round(0, 10);
    run_projector_until_caught_up(db, "p-dry");
    const auto before = state_of(db);
    const auto schemas = rows(db.admin_url(), "SELECT nspname FROM pg_namespace ORDER BY 1");

    auto options = options_for(db);
    options.dry_run = true;
    auto report = rebuild("accounts", options);
    EXPECT_FALSE(report.swapped);
    EXPECT_EQ(report.plan.tables, std::vector<std::string>{"read.accounts"});
    EXPECT_EQ(report.plan.shadow_schema, "rebuild_accounts");
    EXPECT_EQ(
        report.plan.events,
        scalar(db.admin_url(), "SELECT count(*) FROM ordo.events WHERE category = 'account'"));
    ASSERT_EQ(report.plan.checkpoints.size(), static_cast<std::size_t>(kPartitions));
    EXPECT_EQ(report.plan.checkpoints[0].at, report.plan.horizon);
    expect_same(state_of(db), before, "a dry run");
    EXPECT_EQ(rows(db.admin_url(), "SELECT nspname FROM pg_namespace ORDER BY 1"), schemas);
}

TEST(Rebuild, UnknownProjectionsAndBadOptionsAreRefusedClearly) {
    TestDatabase db;
    try {
        rebuild("order", options_for(db));
        FAIL() << "rebuilt an unknown projection";
    } catch (const platform::InvalidInput& e) {
        EXPECT_EQ(std::string{e.what()},
                  "unknown projection 'order'; known: orders, inventory, accounts, traces");
    }
    auto options = options_for(db);
    options.batch = 0;
    EXPECT_THROW(rebuild("orders", options), platform::InvalidInput);
    EXPECT_THROW(projections::read_models("read; drop table x"), platform::InvalidInput);

    // Checkpoints of another partition count: a rebuild with this P would leave rows the
    // runtime does not keep, so it asks for the runtime's P.
    scalar(db.admin_url(),
           "INSERT INTO ordo.projection_checkpoints (projection, partition) SELECT 'orders', p "
           "FROM generate_series(0, 7) p");
    try {
        rebuild("orders", options_for(db));
        FAIL() << "rebuilt with another partition count";
    } catch (const platform::InvalidInput& e) {
        EXPECT_NE(std::string{e.what()}.find("cover 8 partitions, not 4"), std::string::npos)
            << e.what();
    }
    // A view on a read-model table would block the swap: refused before any work.
    scalar(db.admin_url(), "CREATE VIEW read.big_orders AS SELECT * FROM read.orders");
    options.batch = 100;
    options.force = true;
    EXPECT_THROW(rebuild("orders", options), platform::InvalidInput);
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM pg_namespace WHERE nspname = 'rebuild_orders'"),
              0);
}

}  // namespace
}  // namespace ordo::testing
