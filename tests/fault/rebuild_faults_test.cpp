// Fault: a rebuild killed midway leaves the live model as it was and the next run finishes; the
// command refuses while a projector owns the projection.

#include <gtest/gtest.h>

#include <signal.h>

#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// Appends `count` traced StockReceived events over 500 skus in one statement, after the
// events already there; far faster than appends through the API.
void generate_receipts(const TestDatabase& db, int count) {
    scalar(db.migrator_url(),
           "WITH base AS (SELECT count(*) AS n FROM ordo.events), ins AS (INSERT INTO "
           "ordo.events (stream_id, category, stream_version, event_id, event_type, payload, "
           "metadata) SELECT 'inventory-sku-' || (g % 500), 'inventory', g / 500 + 1, "
           "gen_random_uuid(), 'StockReceived', jsonb_build_object('sku', 'sku-' || (g % 500), "
           "'quantity', 1), jsonb_build_object('trace_id', md5(g::text), 'causation_id', "
           "'gen') FROM base, generate_series(base.n, base.n + " +
               std::to_string(count) + " - 1) g RETURNING 1) SELECT count(*) FROM ins");
}

std::unique_ptr<Process> start_rebuild(const TestDatabase& db, const std::string& projection) {
    return std::make_unique<Process>(
        std::vector<std::string>{ordo_binary(), "rebuild", projection, "--partitions", "8",
                                 "--batch", "2000"},
        std::map<std::string, std::string>{{"ORDO_MIGRATOR_URL", db.migrator_url()},
                                           {"ORDO_LOG_LEVEL", "warn"}});
}

std::string checkpoints(const TestDatabase& db) {
    return std::to_string(scalar(db.admin_url(),
                                 "SELECT hashtext(string_agg(projection || partition || ' ' || "
                                 "transaction_id || ' ' || global_position, ',' ORDER BY "
                                 "projection, partition)) FROM ordo.projection_checkpoints"));
}

// Rows in the rebuild's shadow table; -1 when there is none.
std::int64_t shadow_rows(const TestDatabase& db) {
    if (scalar(db.admin_url(), "SELECT count(to_regclass('rebuild_traces.trace_events'))") == 0) {
        return -1;
    }
    return scalar(db.admin_url(), "SELECT count(*) FROM rebuild_traces.trace_events");
}

TEST(RebuildFaults, SigkillMidRebuildLeavesTheLiveModelAndTheNextRunFinishes) {
    TestDatabase db;
    constexpr int kFirst = 20'000;
    constexpr int kMore = 300'000;
    generate_receipts(db, kFirst);
    auto first = start_rebuild(db, "traces");
    ASSERT_EQ(first->wait(120s), 0);
    ASSERT_EQ(scalar(db.admin_url(), "SELECT count(*) FROM read.trace_events"), kFirst);
    const auto live_checkpoints = checkpoints(db);
    const auto live_sum =
        scalar(db.admin_url(), "SELECT sum(hashtext(t::text)) FROM read.trace_events t");

    generate_receipts(db, kMore);
    auto killed = start_rebuild(db, "traces");
    // Killed once it is writing its shadow table, well before the swap.
    ASSERT_TRUE(eventually([&] { return shadow_rows(db) > 0; }, 60s, 5ms));
    killed->signal(SIGKILL);
    ASSERT_TRUE(killed->wait(10s));
    const auto left = shadow_rows(db);
    EXPECT_GT(left, 0);
    EXPECT_LT(left, kFirst + kMore) << "the kill came after the replay: the test proves nothing";
    // The live model and its checkpoints are as they were; readers still see them.
    EXPECT_EQ(scalar(db.query_url(), "SELECT count(*) FROM read.trace_events"), kFirst);
    EXPECT_EQ(scalar(db.admin_url(), "SELECT sum(hashtext(t::text)) FROM read.trace_events t"),
              live_sum);
    EXPECT_EQ(checkpoints(db), live_checkpoints);

    // Run again: the leftover shadow schema goes, the rebuild completes. (Once the killed
    // run's session has ended: its backend notices the lost client only when the statement
    // it was running ends, and holds the rebuild's lock until then.)
    ASSERT_TRUE(eventually(
        [&] {
            return scalar(db.admin_url(),
                          "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                          "database = (SELECT oid FROM pg_database WHERE datname = "
                          "current_database())") == 0;
        },
        120s))
        << "the killed rebuild's session did not end";
    auto again = start_rebuild(db, "traces");
    ASSERT_EQ(again->wait(300s), 0);
    EXPECT_EQ(scalar(db.query_url(), "SELECT count(*) FROM read.trace_events"), kFirst + kMore);
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM read.trace_events t JOIN ordo.events e ON "
                     "e.global_position = t.global_position AND e.transaction_id = "
                     "t.transaction_id AND e.metadata->>'trace_id' = t.trace_id"),
              kFirst + kMore);
    EXPECT_EQ(shadow_rows(db), -1);
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM ordo.projection_checkpoints WHERE projection = "
                     "'traces' AND global_position = (SELECT max(global_position) FROM "
                     "ordo.events)"),
              8);
}

TEST(RebuildFaults, TheCommandRefusesWhileAProjectorOwnsTheProjection) {
    TestDatabase db;
    generate_receipts(db, 1000);
    Process projector{{ordo_binary(), "serve", "projector", "--address",
                       "127.0.0.1:" + std::to_string(free_port()), "--partitions", "8"},
                      {{"ORDO_PROJECTOR_DATABASE_URL", db.projector_url()},
                       {"ORDO_NATS_URL", nats_admin_url()},
                       {"ORDO_NATS_CA_FILE", nats_ca_file()},
                       {"ORDO_LOG_LEVEL", "warn"}}};
    ASSERT_TRUE(eventually(
        [&] { return scalar(db.admin_url(), "SELECT count(*) FROM read.trace_events") == 1000; }));
    auto refused = start_rebuild(db, "traces");
    EXPECT_EQ(refused->wait(60s), 4);
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM pg_namespace WHERE nspname = 'rebuild_traces'"),
              0);

    auto dry = std::make_unique<Process>(
        std::vector<std::string>{ordo_binary(), "rebuild", "traces", "--dry-run", "--partitions",
                                 "8"},
        std::map<std::string, std::string>{{"ORDO_MIGRATOR_URL", db.migrator_url()},
                                           {"ORDO_LOG_LEVEL", "warn"}});
    EXPECT_EQ(dry->wait(60s), 0);
}

}  // namespace
}  // namespace ordo::testing
