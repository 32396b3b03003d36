// What the PostgreSQL slot store does beyond the runtime's unit tests on memory: the
// checkpoints of many slots locked and moved in one statement each.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "platform/core/metrics.hpp"
#include "projections/pg_slot_store.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::projections {
namespace {

using eventstore::Checkpoint;

std::string row(const testing::TestDatabase& db, const std::string& projection, int partition) {
    pqxx::connection conn{db.admin_url()};
    pqxx::read_transaction txn{conn};
    auto r = txn.exec_params(
        "SELECT transaction_id::text || '/' || global_position || '/' || coalesce(owner, '-') || "
        "'/' || coalesce(to_char(last_event_at AT TIME ZONE 'UTC', 'YYYY-MM-DD'), '-') FROM "
        "ordo.projection_checkpoints WHERE projection = $1 AND partition = $2",
        projection, partition);
    return r.empty() ? "none" : r[0][0].as<std::string>();
}

// Whether another session must wait for the slot's checkpoint row: it is locked, or created
// by a transaction still open (which others cannot see yet, but cannot write either).
bool locked_elsewhere(const testing::TestDatabase& db, const std::string& projection,
                      int partition) {
    pqxx::connection conn{db.admin_url()};
    pqxx::work txn{conn};
    txn.exec("SET LOCAL lock_timeout = '200ms'");
    try {
        txn.exec_params(
            "INSERT INTO ordo.projection_checkpoints (projection, partition) VALUES "
            "($1, $2) ON CONFLICT (projection, partition) DO UPDATE SET updated_at = "
            "now()",
            projection, partition);
    } catch (const pqxx::sql_error& e) {
        return e.sqlstate() == "55P03";  // lock_not_available
    }
    return false;  // rolled back
}

TEST(PgSlotStore, LocksAndMovesTheCheckpointsOfManySlotsAtOnce) {
    testing::TestDatabase db;
    {
        pqxx::connection admin{db.admin_url()};
        pqxx::work txn{admin};
        txn.exec(
            "INSERT INTO ordo.projection_checkpoints (projection, partition, transaction_id, "
            "global_position, last_event_at) VALUES ('view', 1, '5', 7, '2026-01-02Z')");
        txn.commit();
    }
    platform::metrics::Registry metrics;
    PgSlotStore store{{.database_url = db.projector_url(), .partitions = 4, .instance = "i-1"},
                      metrics};
    store.transact([&](SlotTxn& txn) {
        // In the order asked; a slot without a row gets one, at zero.
        const auto at = txn.lock_checkpoints({{"view", 2}, {"view", 1}, {"other", 0}});
        ASSERT_EQ(at.size(), 3u);
        EXPECT_EQ(at[0], Checkpoint{});
        EXPECT_EQ(at[1], (Checkpoint{5, 7}));
        EXPECT_EQ(at[2], Checkpoint{});
        for (const auto& [projection, partition] :
             std::vector<SlotTxn::SlotKey>{{"view", 2}, {"view", 1}, {"other", 0}}) {
            EXPECT_TRUE(locked_elsewhere(db, projection, partition))
                << projection << "/" << partition;
        }
        EXPECT_FALSE(locked_elsewhere(db, "view", 3));
        // Each moved; an empty last_event_at keeps the one stored.
        txn.save_checkpoints({{"view", 2, Checkpoint{9, 11}, "2026-12-07T00:00:00.000000Z"},
                              {"view", 1, Checkpoint{12, 13}, ""}});
    });
    EXPECT_EQ(row(db, "view", 2), "9/11/i-1/2026-12-07");
    EXPECT_EQ(row(db, "view", 1), "12/13/i-1/2026-01-02");
    EXPECT_EQ(row(db, "other", 0), "0/0/-/-");
    EXPECT_EQ(row(db, "view", 3), "none");
}

}  // namespace
}  // namespace ordo::projections
