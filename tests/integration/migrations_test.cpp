#include <gtest/gtest.h>

#include <thread>

#include <pqxx/pqxx>

#include "eventstore/schema.hpp"
#include "platform/migrator.hpp"
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

}  // namespace
}  // namespace ordo
