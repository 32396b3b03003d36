// Migrations: applied once with checksums, edited or unknown ones refused, failures leave nothing,
// concurrent runs, and the upgrade from shared roles to one role per service.

#include <gtest/gtest.h>

#include <algorithm>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/schema.hpp"
#include "platform/pg/migrator.hpp"
#include "tests/support/test_database.hpp"

namespace ordo {
namespace {

using platform::Logger;
using platform::pg::migrate;
using platform::pg::MigrationError;

int applied_count(const std::string& url) {
    pqxx::connection conn{url};
    pqxx::nontransaction tx{conn};
    return tx.exec1("SELECT count(*) FROM ordo_migrations.applied")[0].as<int>();
}

TEST(Migrations, ApplyOnceAndRecordChecksums) {
    testing::TestDatabase db{false};
    auto first = migrate(db.migrator_url(), eventstore::migrations(), Logger::null_logger());
    EXPECT_EQ(first.applied.size(), eventstore::migrations().size());
    auto second = migrate(db.migrator_url(), eventstore::migrations(), Logger::null_logger());
    EXPECT_TRUE(second.applied.empty());
    EXPECT_EQ(second.already_applied.size(), eventstore::migrations().size());
    EXPECT_EQ(applied_count(db.migrator_url()), static_cast<int>(eventstore::migrations().size()));
}

TEST(Migrations, AnEditedMigrationIsRefused) {
    testing::TestDatabase db;
    auto edited = eventstore::migrations();
    edited.front().sql += "\n-- an innocent-looking edit\n";
    try {
        migrate(db.migrator_url(), edited, Logger::null_logger());
        FAIL() << "an edited migration must be refused";
    } catch (const MigrationError& e) {
        EXPECT_NE(std::string{e.what()}.find(edited.front().name), std::string::npos);
        EXPECT_NE(std::string{e.what()}.find("edited"), std::string::npos);
    }
}

TEST(Migrations, AMigrationUnknownToThisBuildIsRefused) {
    testing::TestDatabase db;
    auto older = eventstore::migrations();
    older.pop_back();
    EXPECT_THROW(migrate(db.migrator_url(), older, Logger::null_logger()), MigrationError);
}

TEST(Migrations, AFailingMigrationLeavesNothingBehind) {
    testing::TestDatabase db;
    auto with_bad = eventstore::migrations();
    with_bad.push_back({9999, "9999_broken.sql", "CREATE TABLE ordo.half (id int); SELECT 1/0;"});
    EXPECT_ANY_THROW(migrate(db.migrator_url(), with_bad, Logger::null_logger()));
    pqxx::connection conn{db.migrator_url()};
    pqxx::nontransaction tx{conn};
    EXPECT_TRUE(tx.exec1("SELECT to_regclass('ordo.half') IS NULL")[0].as<bool>());
    EXPECT_EQ(applied_count(db.migrator_url()), static_cast<int>(eventstore::migrations().size()));
}

TEST(Migrations, ConcurrentRunsApplyEachFileOnce) {
    testing::TestDatabase db{false};
    std::vector<std::thread> runs;
    std::atomic<int> failures{0};
    std::atomic<std::size_t> applied{0};
    for (int i = 0; i < 4; ++i) {
        runs.emplace_back([&] {
            try {
                applied +=
                    migrate(db.migrator_url(), eventstore::migrations(), Logger::null_logger())
                        .applied.size();
            } catch (const std::exception&) {
                ++failures;
            }
        });
    }
    for (auto& t : runs) t.join();
    EXPECT_EQ(failures.load(), 0);
    EXPECT_EQ(applied.load(), eventstore::migrations().size());
}

// A database made by the releases before per-service roles (migrations 0001-0008, the
// shared writer and reader roles) upgrades in place: its events and read models stay, the
// old roles lose every grant, and each service role can do its work at once.
TEST(Migrations, UpgradesADatabaseOfTheSharedRolesToOneRolePerService) {
    testing::TestDatabase db{false};
    auto before = eventstore::migrations();
    before.erase(
        std::remove_if(before.begin(), before.end(), [](const auto& m) { return m.version > 8; }),
        before.end());
    ASSERT_EQ(before.size(), 8u);
    migrate(db.migrator_url(), before, Logger::null_logger());
    {
        pqxx::connection owner{db.migrator_url()};
        pqxx::work tx{owner};
        tx.exec_params(
            "SELECT * FROM ordo.append_events('order-old', -1, $1::jsonb)",
            R"([{"event_id": "6f1c5b2e-0d4b-4f7e-9a51-3c2f1d0e8a77", "type": "OrderPlaced",
                 "payload": {"order_id": "old"}}])");
        tx.exec(
            "INSERT INTO read.orders (order_id, customer_id, account_id, status, lines, "
            "total, version, placed_position, placed_at, updated_at) VALUES ('old', 'c', "
            "'a', 'placed', '[]', 1, 1, 1, now(), now())");
        EXPECT_TRUE(tx.exec1("SELECT has_table_privilege('ordo_writer', 'ordo.events', 'INSERT') "
                             "AND has_table_privilege('ordo_reader', 'read.orders', 'SELECT')")[0]
                        .as<bool>())
            << "the old migrations granted to the shared roles";
        tx.commit();
    }

    auto report = migrate(db.migrator_url(), eventstore::migrations(), Logger::null_logger());
    ASSERT_EQ(report.applied.size(), eventstore::migrations().size() - 8);

    pqxx::connection owner{db.migrator_url()};
    pqxx::nontransaction check{owner};
    EXPECT_FALSE(check
                     .exec1("SELECT has_table_privilege('ordo_writer', 'ordo.events', 'INSERT') "
                            "OR has_table_privilege('ordo_writer', 'read.orders', 'UPDATE') "
                            "OR has_table_privilege('ordo_reader', 'read.orders', 'SELECT') "
                            "OR has_database_privilege('ordo_writer', current_database(), "
                            "'CONNECT')")[0]
                     .as<bool>());
    {
        pqxx::connection command{db.command_url()};
        pqxx::work tx{command};
        auto row = tx.exec_params1(
            "SELECT out_outcome, out_version FROM ordo.append_events('order-old', 1, $1::jsonb)",
            R"([{"event_id": "0c7d9e4a-5b3f-4a21-8e6d-2f9b1c4a7e10", "type": "OrderConfirmed",
                 "payload": {"order_id": "old"}}])");
        EXPECT_EQ(row[0].as<std::string>(), "appended");
        EXPECT_EQ(row[1].as<int>(), 2) << "the stream's history is kept";
        tx.commit();
    }
    pqxx::connection query{db.query_url()};
    pqxx::nontransaction read{query};
    EXPECT_EQ(
        read.exec1("SELECT status FROM read.orders WHERE order_id = 'old'")[0].as<std::string>(),
        "placed");
}

}  // namespace
}  // namespace ordo
