// The read models' batches: apply_batch() leaves exactly the rows that apply() on each event in
// turn leaves, whatever the batches' sizes and whatever rows exist before them.

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "projections/read_models.hpp"
#include "projections/sql_rows.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

const std::vector<std::string> kTables = {"orders", "inventory", "accounts", "trace_events"};

// A schema with empty copies of the read tables, for one way of applying.
void make_schema(pqxx::connection& conn, const std::string& schema) {
    pqxx::work txn{conn};
    txn.exec("CREATE SCHEMA " + schema);
    for (const auto& t : kTables) {
        txn.exec("CREATE TABLE " + schema + "." + t + " (LIKE read." + t + " INCLUDING ALL)");
    }
    txn.commit();
}

std::vector<std::string> rows_of(pqxx::connection& conn, const std::string& table) {
    pqxx::read_transaction txn{conn};
    std::vector<std::string> rows;
    for (const auto& r : txn.exec("SELECT x::text FROM " + table + " x ORDER BY 1")) {
        rows.push_back(r[0].as<std::string>());
    }
    return rows;
}

// Events of a few skus, accounts and orders in a seeded random order, with what apply()
// must get right: stock reserved before any was received, accounts charged before (or
// without) their first deposit, and orders changed before they were placed, placed and
// then confirmed, cancelled or asked to cancel.
class History {
   public:
    explicit History(unsigned seed) : rng_{seed} {}

    std::vector<eventstore::RecordedEvent> events(int count) {
        std::vector<eventstore::RecordedEvent> out;
        for (int i = 0; i < count; ++i) out.push_back(next());
        return out;
    }

   private:
    eventstore::RecordedEvent next() {
        const int kind = pick(0, 11);
        const auto n = std::to_string(pick(0, 3));
        const auto order = "o" + std::to_string(pick(0, 5));
        const auto amount = pick(1, 50);
        using namespace domain;
        auto stock = [&](const inventory::Event& e) {
            return make("inventory-s" + n, inventory::event_type(e), inventory::encode_payload(e));
        };
        auto money = [&](const payments::Event& e) {
            return make("account-a" + n, payments::event_type(e), payments::encode_payload(e));
        };
        auto to_order = [&](const orders::Event& e) {
            return make("order-" + order, orders::event_type(e), orders::encode_payload(e));
        };
        switch (kind) {
            case 0:
                return stock(inventory::StockReceived{"s" + n, amount});
            case 1:
                return stock(inventory::StockReserved{"s" + n, order, amount});
            case 2:
                return stock(inventory::ReservationReleased{"s" + n, order, amount});
            case 3:
                return stock(inventory::ReservationCommitted{"s" + n, order, amount});
            case 4:
                return money(payments::FundsDeposited{"a" + n, amount});
            case 5:
                return money(payments::PaymentAuthorized{"a" + n, order, amount});
            case 6:
                return money(payments::AuthorizationVoided{"a" + n, order, amount});
            case 7:
                return money(payments::PaymentCaptured{"a" + n, order, amount});
            case 8:
                // An order is placed once (a second OrderPlaced is poison to apply()).
                if (placed_.insert(order).second) {
                    return to_order(orders::OrderPlaced{
                        order, "c" + n, "a" + n, {{"s" + n, amount, 10, "EUR"}}, amount * 10});
                }
                return to_order(orders::OrderConfirmed{order});
            case 9:
                return to_order(orders::OrderConfirmed{order});
            case 10:
                return to_order(orders::OrderCancelled{order, "reason " + n});
            default:
                return to_order(orders::OrderCancellationRequested{order, "asked " + n});
        }
    }

    eventstore::RecordedEvent make(const std::string& stream, std::string_view type,
                                   nlohmann::json payload) {
        eventstore::RecordedEvent e;
        e.stream_id = stream;
        e.category = stream.substr(0, stream.find('-'));
        e.version = ++versions_[stream];
        e.position = ++position_;
        e.transaction_id = 1000 + position_;
        const auto digits = std::to_string(position_);
        e.event_id = "00000000-0000-4000-8000-" + std::string(12 - digits.size(), '0') + digits;
        e.type = std::string{type};
        e.payload = std::move(payload);
        // Every other event traced; times one second apart.
        if (position_ % 2 == 0) e.metadata.trace_id = "trace-" + n_of(position_ % 7);
        e.metadata.causation_id = position_ % 3 == 0 ? "" : "cause-" + n_of(position_);
        e.recorded_at = "2026-12-06T" + two(position_ / 3600 % 24) + ":" +
                        two(position_ / 60 % 60) + ":" + two(position_ % 60) + ".000000Z";
        return e;
    }

    static std::string n_of(std::int64_t n) { return std::to_string(n); }
    static std::string two(std::int64_t n) { return (n < 10 ? "0" : "") + std::to_string(n); }
    int pick(int low, int high) { return std::uniform_int_distribution<int>{low, high}(rng_); }

    std::mt19937 rng_;
    std::map<std::string, std::int64_t> versions_;
    std::set<std::string> placed_;
    std::int64_t position_ = 0;
};

TEST(ReadModelBatches, ABatchLeavesTheRowsApplyLeavesEventByEvent) {
    TestDatabase db;
    pqxx::connection conn{db.migrator_url()};
    make_schema(conn, "one_by_one");
    make_schema(conn, "batched");
    auto one_by_one = projections::read_models("one_by_one");
    auto batched = projections::read_models("batched");

    // Rounds of one history, each cut into batches its own way, compared after each.
    History history{7919};
    // The fourth round is one batch of 2,400 events, as a rebuild's are: large enough for
    // the traces to go by COPY.
    for (unsigned seed : {1u, 2u, 3u, 4u}) {
        const auto events = history.events(seed == 4 ? 2400 : 600);
        std::mt19937 sizes{seed};
        std::size_t at = 0;
        while (at < events.size()) {
            // Batches of 1 to 40 events: the first ones find empty tables, later ones rows of
            // every kind already there.
            const auto size = seed == 4
                                  ? events.size()
                                  : std::min<std::size_t>(
                                        events.size() - at,
                                        std::uniform_int_distribution<std::size_t>{1, 40}(sizes));
            for (std::size_t m = 0; m < one_by_one.size(); ++m) {
                const auto categories = one_by_one[m]->categories();
                auto mine = [&](const eventstore::RecordedEvent& e) {
                    return categories.empty() || std::find(categories.begin(), categories.end(),
                                                           e.category) != categories.end();
                };
                pqxx::work txn{conn};
                projections::SqlReadModelTxn target{txn};
                projections::EventRefs refs;
                for (std::size_t i = at; i < at + size; ++i) {
                    if (!mine(events[i])) continue;
                    one_by_one[m]->apply(target, events[i]);
                    refs.push_back(&events[i]);
                }
                batched[m]->apply_batch(target, refs);
                txn.commit();
            }
            at += size;
        }
        for (const auto& t : kTables) {
            const auto expected = rows_of(conn, "one_by_one." + t);
            ASSERT_FALSE(expected.empty()) << t;
            EXPECT_EQ(rows_of(conn, "batched." + t), expected) << t << ", seed " << seed;
        }
    }
}

// apply() fails on an order placed twice, and so does a batch that holds both: the runtime
// then applies the batch one event at a time and parks the second OrderPlaced, where a batch
// that took the second would have overwritten the order and lost what came between.
TEST(ReadModelBatches, AnOrderPlacedTwiceInABatchFailsTheBatch) {
    TestDatabase db;
    pqxx::connection conn{db.migrator_url()};
    auto make = [&](const domain::orders::Event& e, std::int64_t version) {
        eventstore::RecordedEvent r;
        r.stream_id = "order-twice";
        r.category = "order";
        r.version = version;
        r.position = version;
        r.transaction_id = 10 + version;
        r.event_id = "00000000-0000-4000-8000-00000000000" + std::to_string(version);
        r.type = std::string{domain::orders::event_type(e)};
        r.payload = domain::orders::encode_payload(e);
        r.recorded_at = "2026-12-06T07:00:0" + std::to_string(version) + ".000000Z";
        return r;
    };
    const domain::orders::OrderPlaced order{"twice", "c", "a", {{"s", 1, 10, "EUR"}}, 10};
    const std::vector<eventstore::RecordedEvent> events{
        make(order, 1), make(domain::orders::OrderConfirmed{"twice"}, 2), make(order, 3)};
    auto orders = std::move(projections::read_models("read").front());
    ASSERT_EQ(orders->name(), "orders");
    {
        pqxx::work txn{conn};
        projections::SqlReadModelTxn target{txn};
        EXPECT_ANY_THROW(orders->apply_batch(target, {&events[0], &events[1], &events[2]}));
    }
    pqxx::work txn{conn};
    projections::SqlReadModelTxn target{txn};
    orders->apply(target, events[0]);
    orders->apply(target, events[1]);
    txn.exec("SAVEPOINT second");
    EXPECT_ANY_THROW(orders->apply(target, events[2]));
    txn.exec("ROLLBACK TO SAVEPOINT second");
    EXPECT_EQ(
        txn.exec1("SELECT status FROM read.orders WHERE order_id = 'twice'")[0].as<std::string>(),
        "confirmed");
}

// SqlRows sends its rows in chunks of about the size asked, every row once and whole, a raw
// field spliced in as the JSON it is.
TEST(ReadModelBatches, RowsGoInChunksEachRowOnceAndWhole) {
    TestDatabase db;
    pqxx::connection conn{db.migrator_url()};
    pqxx::work txn{conn};
    txn.exec("CREATE TEMP TABLE got (n bigint, name text, lines jsonb)");
    txn.exec("CREATE TEMP TABLE statements (at timestamptz)");
    int statements = 0;
    {
        projections::SqlRows rows{txn,
                                  "INSERT INTO got SELECT n, name, lines FROM "
                                  "jsonb_to_recordset($1::jsonb) AS x(n bigint, name text, "
                                  "lines jsonb)",
                                  200};
        for (int n = 0; n < 50; ++n) {
            const auto before = txn.exec1("SELECT count(*) FROM got")[0].as<int>();
            rows.add({{"n", n}, {"name", "row \"" + std::to_string(n) + "\""}}, "lines",
                     "[{\"sku\":\"s-" + std::to_string(n) + "\",\"quantity\":2}]");
            if (txn.exec1("SELECT count(*) FROM got")[0].as<int>() > before) ++statements;
        }
        rows.done();
        ++statements;
    }
    EXPECT_EQ(txn.exec1("SELECT count(DISTINCT n) FROM got")[0].as<int>(), 50);
    EXPECT_EQ(txn.exec1("SELECT count(*) FROM got")[0].as<int>(), 50);
    EXPECT_EQ(txn.exec1("SELECT count(*) FROM got WHERE name = 'row \"' || n || '\"' AND "
                        "lines = jsonb_build_array(jsonb_build_object('sku', 's-' || n, "
                        "'quantity', 2))")[0]
                  .as<int>(),
              50);
    // Rows of 60 to 70 bytes in chunks of 200: several rows a statement, many statements.
    EXPECT_GT(statements, 10);
    EXPECT_LT(statements, 25);
}

}  // namespace
}  // namespace ordo::testing
