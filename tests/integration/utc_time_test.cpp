// PostgreSQL formats a time through platform::sql_utc exactly as format_utc does in C++,
// whatever the session's time zone and date style.
#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "platform/core/utc_time.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

TEST(UtcTime, PostgresFormatsAColumnAsTheServicesDo) {
    TestDatabase db;
    pqxx::connection conn{db.admin_url()};
    pqxx::nontransaction txn{conn};
    txn.exec0("SET TimeZone = 'America/Los_Angeles'");
    txn.exec0("SET DateStyle = 'SQL, DMY'");
    const std::chrono::system_clock::time_point at{std::chrono::microseconds{1796378712123456}};
    auto row =
        txn.exec1("SELECT " + platform::sql_utc("timestamptz '2026-12-04 11:05:12.123456+01'"));
    EXPECT_EQ(row[0].as<std::string>(), platform::format_utc(at));
}

}  // namespace
}  // namespace ordo::testing
