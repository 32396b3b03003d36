// Bounds on PostgreSQL work: connection parameters, the operation bound, deadlines.

#include <gtest/gtest.h>

#include "platform/core/config.hpp"
#include "platform/core/deadlines.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::platform {
namespace {

using namespace std::chrono_literals;

TEST(ConnectionParameters, AddsWhatAUriDoesNotSetAndKeepsItsOwnValues) {
    const ConnectionParameters defaults{{"keepalives", "1"}, {"connect_timeout", "5"}};
    EXPECT_EQ(with_default_parameters("postgresql://u:p@h:1/db", defaults),
              "postgresql://u:p@h:1/db?keepalives=1&connect_timeout=5");
    EXPECT_EQ(with_default_parameters("postgres://h/db?connect_timeout=30", defaults),
              "postgres://h/db?connect_timeout=30&keepalives=1");
    EXPECT_EQ(with_default_parameters("postgresql://h/db?", defaults),
              "postgresql://h/db?keepalives=1&connect_timeout=5");
    // A name that only starts like a default is another parameter.
    EXPECT_EQ(with_default_parameters("postgresql://h/db?keepalives_idle=9", defaults),
              "postgresql://h/db?keepalives_idle=9&keepalives=1&connect_timeout=5");
    EXPECT_EQ(with_default_parameters("postgresql://h/db", {{"application_name", "ordo x/y"}}),
              "postgresql://h/db?application_name=ordo%20x%2Fy");
}

TEST(ConnectionParameters, AddsWhatAKeywordStringDoesNotSetAndKeepsItsOwnValues) {
    const ConnectionParameters defaults{{"keepalives", "1"}, {"connect_timeout", "5"}};
    EXPECT_EQ(with_default_parameters("host=h dbname=db", defaults),
              "host=h dbname=db keepalives='1' connect_timeout='5'");
    EXPECT_EQ(with_default_parameters("host=h connect_timeout = 30", defaults),
              "host=h connect_timeout = 30 keepalives='1'");
    // A quoted value that spells a parameter is a value, not a parameter.
    EXPECT_EQ(with_default_parameters("password='a keepalives=0 \\' b' keepalives=0", defaults),
              "password='a keepalives=0 \\' b' keepalives=0 connect_timeout='5'");
    EXPECT_EQ(with_default_parameters("", {{"application_name", "it's"}}),
              "application_name='it\\'s'");
}

TEST(ConnectionParameters, EveryConnectionNoticesADeadPeer) {
    const auto url = pg::connection_url("postgresql://h/db?tcp_user_timeout=2500", "ordo-test");
    for (const char* part :
         {"keepalives=1", "keepalives_idle=", "keepalives_interval=", "keepalives_count=",
          "connect_timeout=", "application_name=ordo-test"}) {
        EXPECT_NE(url.find(part), std::string::npos) << part << " in " << url;
    }
    EXPECT_NE(url.find("tcp_user_timeout=2500"), std::string::npos) << url;
    EXPECT_EQ(url.find("tcp_user_timeout=10000"), std::string::npos) << url;
}

TEST(OperationBound, IsTheSetTimeoutOrTwiceTheStatementTimeout) {
    pg::PoolOptions options;
    options.statement_timeout = 5000ms;
    EXPECT_EQ(pg::operation_bound(options), 10000ms);
    options.operation_timeout = 1500ms;
    EXPECT_EQ(pg::operation_bound(options), 1500ms);
    options.operation_timeout = 0ms;
    options.statement_timeout = 100ms;
    EXPECT_EQ(pg::operation_bound(options), 1000ms) << "never below a second";
    options.statement_timeout = 0ms;  // the server bounds nothing
    EXPECT_EQ(pg::operation_bound(options), std::nullopt);
}

TEST(Deadlines, FireInOrderOnceEachAndNotWhenDisarmed) {
    Deadlines d;
    const Deadlines::TimePoint t0{};
    auto late = d.arm(t0 + 30s);
    auto early = d.arm(t0 + 10s);
    auto disarmed = d.arm(t0 + 5s);
    auto same = d.arm(t0 + 10s);
    EXPECT_EQ(d.next(), t0 + 5s);
    EXPECT_TRUE(d.disarm(disarmed));
    EXPECT_FALSE(d.disarm(disarmed)) << "disarmed once";
    EXPECT_EQ(d.next(), t0 + 10s);
    EXPECT_TRUE(d.take_due(t0 + 9s).empty());
    EXPECT_EQ(d.take_due(t0 + 10s), (std::vector<Deadlines::Id>{early, same}));
    EXPECT_TRUE(d.take_due(t0 + 20s).empty()) << "each fires once";
    EXPECT_FALSE(d.disarm(early)) << "a fired deadline cannot be disarmed";
    EXPECT_EQ(d.size(), 1u);
    EXPECT_EQ(d.take_due(t0 + 60s), (std::vector<Deadlines::Id>{late}));
    EXPECT_EQ(d.next(), std::nullopt);
    EXPECT_EQ(d.size(), 0u);
}

}  // namespace
}  // namespace ordo::platform
