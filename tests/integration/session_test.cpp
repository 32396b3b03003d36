// platform::pg::Session against a real server: a session that was ended stays ended.

#include <gtest/gtest.h>

#include <optional>

#include <pqxx/pqxx>

#include "platform/pg/session.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

// Ends the backend `pid` as an operator (or a server restart) would, and waits until it is gone.
void end_backend(const TestDatabase& db, int pid) {
    pqxx::connection admin{db.admin_url()};
    pqxx::nontransaction tx{admin};
    tx.exec_params("SELECT pg_terminate_backend($1, 10000)", pid);
}

// A session-level advisory lock taken on each connection, and their backends then ended: a plain
// libpqxx connection comes back by itself in a new session that holds no lock, which its
// owner cannot tell from the lock being held; a Session stays broken and says so.
TEST(Session, AnEndedSessionDoesNotComeBackWithoutItsLocks) {
    TestDatabase db;
    pqxx::connection plain{db.command_url()};
    platform::pg::Session session{db.command_url(), "ordo-session-test"};
    int key = 0;
    for (pqxx::connection_base* conn :
         std::initializer_list<pqxx::connection_base*>{&plain, &session}) {
        pqxx::nontransaction tx{*conn};
        EXPECT_TRUE(tx.exec_params1("SELECT pg_try_advisory_lock(42, $1)", ++key)[0].as<bool>());
    }
    const int plain_pid = plain.backendpid();
    end_backend(db, plain_pid);
    end_backend(db, session.backendpid());
    // The plain connection comes back by itself within a few uses (libpq's first attempts
    // may fail), in another backend, without the lock.
    std::optional<int> back_in;
    for (int use = 0; use < 5 && !back_in; ++use) {
        try {
            pqxx::nontransaction tx{plain};
            back_in = tx.exec1("SELECT pg_backend_pid()")[0].as<int>();
            EXPECT_EQ(tx.exec1("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND "
                               "pid = pg_backend_pid()")[0]
                          .as<int>(),
                      0);
        } catch (const pqxx::broken_connection&) {
        }
    }
    ASSERT_TRUE(back_in.has_value()) << "libpqxx no longer reconnects by itself";
    EXPECT_NE(*back_in, plain_pid);
    // The Session does not: every use throws, until its owner opens a new one.
    for (int use = 0; use < 5; ++use) {
        EXPECT_THROW(pqxx::nontransaction{session}.exec("SELECT 1"), pqxx::broken_connection)
            << "use " << use;
    }
    EXPECT_FALSE(session.is_open());
}

}  // namespace
}  // namespace ordo::testing
