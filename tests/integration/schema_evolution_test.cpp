// Schema evolution on real PostgreSQL: OrderPlaced events stored at version 1 (prices as bare
// amounts) read back in version 2's shape through an aggregate load, the projections, the
// offline rebuild and the saga intake; the stored rows never change.

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "command/aggregate.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "projections/read_models.hpp"
#include "projections/rebuild.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/projector.hpp"
#include "tests/support/saga_stack.hpp"
#include "tests/support/test_database.hpp"
#include "tests/support/upcasters.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

json placed_v1(const std::string& order, const std::string& account, std::int64_t price) {
    return {{"order_id", order},
            {"customer_id", "c-1"},
            {"account_id", account},
            {"lines", json::array({{{"sku", "sku-a"}, {"quantity", 2}, {"unit_price", price}}})},
            {"total", 2 * price}};
}

// Appends an OrderPlaced of version 1 straight into the store, as a writer before the
// change did.
void append_v1(eventstore::EventStore& raw, const std::string& order, const std::string& account,
               std::int64_t price) {
    raw.append("order-" + order, eventstore::ExpectedVersion::no_stream(),
               {{platform::new_uuid(), "OrderPlaced", placed_v1(order, account, price), {}, 1}});
}

// The stored row of an order's OrderPlaced: its schema version and payload, as written.
json stored_placed(const TestDatabase& db, const std::string& order) {
    pqxx::connection conn{db.admin_url()};
    pqxx::read_transaction txn{conn};
    auto row = txn.exec_params1(
        "SELECT schema_version, payload::text FROM ordo.events WHERE stream_id = $1 AND "
        "stream_version = 1",
        "order-" + order);
    return {{"schema_version", row[0].as<int>()},
            {"payload", json::parse(row[1].as<std::string>())}};
}

json read_order_lines(const TestDatabase& db, const std::string& order) {
    pqxx::connection conn{db.admin_url()};
    pqxx::read_transaction txn{conn};
    auto rows = txn.exec_params("SELECT lines::text FROM read.orders WHERE order_id = $1", order);
    return rows.empty() ? json{} : json::parse(rows[0][0].as<std::string>());
}

std::vector<std::string> orders_rows(const TestDatabase& db) {
    pqxx::connection conn{db.admin_url()};
    pqxx::read_transaction txn{conn};
    std::vector<std::string> out;
    for (const auto& r : txn.exec("SELECT x::text FROM read.orders x ORDER BY order_id")) {
        out.push_back(r[0].as<std::string>());
    }
    return out;
}

TEST(SchemaEvolution, OldOrdersLoadDecideProjectAndRebuildInTheNewShapeAndStayAsStored) {
    TestDatabase db;
    platform::pg::Pool pool{
        {.url = db.command_url(), .size = 2, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore raw{pool};
    eventstore::EventStore store{pool, nullptr, std::nullopt, &upcasters()};
    append_v1(raw, "o-1", "acct-1", 500);
    append_v1(raw, "o-2", "acct-1", 70);
    const auto stored_o1 = stored_placed(db, "o-1");
    ASSERT_EQ(stored_o1["schema_version"], 1);
    ASSERT_EQ(stored_o1["payload"], placed_v1("o-1", "acct-1", 500));

    // The aggregate load: the stored order reads as version 2 and decides as any order.
    const command::CommandContext context{platform::new_trace(), "corr", "", "", "test"};
    auto cancelled = store.transact([&](eventstore::Session& s) {
        return command::execute<command::OrderTraits>(
            s, "order-o-1", domain::orders::RequestCancellation{"o-1", "changed"}, context);
    });
    EXPECT_FALSE(cancelled.rejection.has_value());
    EXPECT_TRUE(cancelled.appended);
    EXPECT_EQ(cancelled.version, 2);
    auto loaded = store.transact([&](eventstore::Session& s) {
        return eventstore::load<command::OrderTraits>(s, "order-o-1");
    });
    ASSERT_EQ(loaded.state.lines.size(), 1u);
    EXPECT_EQ(loaded.state.lines[0].unit_price, 500);
    EXPECT_EQ(loaded.state.lines[0].currency, "EUR");
    EXPECT_TRUE(loaded.state.cancellation_requested);
    // A new order is written at version 2, its price naming its currency.
    auto placed = store.transact([&](eventstore::Session& s) {
        return command::execute<command::OrderTraits>(
            s, "order-o-3",
            domain::orders::PlaceOrder{"o-3", "c-1", "acct-1", {{"sku-a", 1, 900, "EUR"}}},
            context);
    });
    ASSERT_TRUE(placed.appended);
    EXPECT_EQ(stored_placed(db, "o-3")["schema_version"], 2);
    EXPECT_EQ(stored_placed(db, "o-3")["payload"]["lines"][0]["unit_price"],
              (json{{"amount", 900}, {"currency", "EUR"}}));

    // The projections (store path): the orders read model shows the new shape; unit_price
    // stays the amount for the query API's clients.
    {
        Projector projector{db, "p-evolution"};
        ASSERT_TRUE(eventually([&] {
            return scalar(db.admin_url(),
                          "SELECT count(*) FROM read.orders WHERE version = CASE order_id WHEN "
                          "'o-1' THEN 2 ELSE 1 END") == 3;
        }));
    }
    const json eur_line = {
        {"sku", "sku-a"}, {"quantity", 2}, {"unit_price", 500}, {"currency", "EUR"}};
    EXPECT_EQ(read_order_lines(db, "o-1"), json::array({eur_line}));
    EXPECT_EQ(read_order_lines(db, "o-3")[0]["unit_price"], 900);
    EXPECT_EQ(read_order_lines(db, "o-3")[0]["currency"], "EUR");
    EXPECT_EQ(scalar(db.admin_url(), "SELECT count(*) FROM ordo.dead_letters"), 0);

    // The offline rebuild over versions 1 and 2 equals the live model.
    const auto live = orders_rows(db);
    ASSERT_EQ(live.size(), 3u);
    ASSERT_TRUE(eventually([&] { return store_settled(db.migrator_url()); }));
    platform::SystemClock clock;
    projections::RebuildOptions options{.database_url = db.migrator_url(),
                                        .partitions = 4,
                                        .owner_ttl = 0s,
                                        .upcasters = &upcasters()};
    auto report = projections::rebuild(
        "orders", [](const std::string& schema) { return projections::read_models(schema); },
        options, clock, platform::Logger::null_logger());
    EXPECT_TRUE(report.swapped);
    EXPECT_EQ(orders_rows(db), live);

    // Nothing of it rewrote a stored event.
    EXPECT_EQ(stored_placed(db, "o-1"), stored_o1);
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM ordo.events WHERE event_type = 'OrderPlaced' AND "
                     "schema_version = 1"),
              2);
}

// A reader meets an OrderPlaced of a version it does not know: the projection parks it as a
// dead letter, holding the event as stored, and goes on with the rest.
TEST(SchemaEvolution, AVersionNewerThanKnownIsParkedAsADeadLetterNotGuessed) {
    TestDatabase db;
    platform::pg::Pool pool{
        {.url = db.command_url(), .size = 2, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore raw{pool};
    raw.append("order-o-9", eventstore::ExpectedVersion::no_stream(),
               {{platform::new_uuid(), "OrderPlaced", placed_v1("o-9", "acct-1", 5), {}, 3}});
    append_v1(raw, "o-10", "acct-1", 5);
    Projector projector{db, "p-newer"};
    ASSERT_TRUE(eventually([&] {
        return scalar(db.admin_url(),
                      "SELECT count(*) FROM ordo.dead_letters WHERE projection = 'orders' AND "
                      "event_type = 'OrderPlaced' AND schema_version = 3 AND error LIKE "
                      "'%schema version 3%'") == 1 &&
               scalar(db.admin_url(), "SELECT count(*) FROM read.orders WHERE order_id = 'o-10'") ==
                   1;
    }));
    EXPECT_EQ(scalar(db.admin_url(), "SELECT count(*) FROM read.orders WHERE order_id = 'o-9'"), 0);
}

// The saga intake: an order placed as version 1 (written straight into the store) runs its
// saga to the end, in both modes; its process starts at version 2 with the price in euros.
TEST(SchemaEvolution, AnOrderPlacedAsVersionOneCompletesItsSaga) {
    for (const std::string mode : {"orchestration", "choreography"}) {
        SagaStack stack{mode};
        stack.receive("sku-a", 10);
        stack.deposit("acct-1", 1000);
        platform::pg::Pool pool{{.url = stack.database().command_url(),
                                 .size = 1,
                                 .preparers = {&eventstore::EventStore::prepare}}};
        eventstore::EventStore raw{pool};
        append_v1(raw, "o-1", "acct-1", 100);
        EXPECT_EQ(stack.settle("o-1"), "confirmed") << mode;
        EXPECT_EQ(stack.saga("o-1")["status"], "completed") << mode;
        // The accounts read model follows the saga's last event a moment later.
        EXPECT_TRUE(eventually([&] {
            return stack.queries().get("/v1/accounts/acct-1").json()["balance"] == 800;
        })) << mode;
        const auto process = scalar(stack.database().admin_url(),
                                    "SELECT count(*) FROM ordo.events WHERE event_type = "
                                    "'ProcessStarted' AND schema_version = 2 AND payload #>> "
                                    "'{order,lines,0,unit_price,currency}' = 'EUR'");
        EXPECT_GE(process, 1) << mode;
        EXPECT_EQ(stored_placed(stack.database(), "o-1")["payload"],
                  placed_v1("o-1", "acct-1", 100))
            << mode;
        expect_invariants(stack);
    }
}

}  // namespace
}  // namespace ordo::testing
