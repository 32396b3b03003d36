// Fault: a stopped PostgreSQL server process behind the command service: the request fails with
// 503 in bounded time and the service recovers.

#include <gtest/gtest.h>

#include <signal.h>

#include <vector>

#include <pqxx/pqxx>

#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/problem.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// The server processes serving the command service's pooled connections to `db`.
std::vector<int> pool_backends(const TestDatabase& db) {
    pqxx::connection admin{db.admin_url()};
    pqxx::nontransaction tx{admin};
    std::vector<int> pids;
    for (const auto& row : tx.exec_params("SELECT pid FROM pg_stat_activity WHERE datname = $1 "
                                          "AND application_name = 'ordo-command-pool'",
                                          db.name())) {
        pids.push_back(row[0].as<int>());
    }
    return pids;
}

// Stops processes (SIGSTOP) and lets them go on (SIGCONT) when it ends, however the test
// ends.
class Paused {
   public:
    explicit Paused(std::vector<int> pids) : pids_{std::move(pids)} {
        for (int pid : pids_) ::kill(pid, SIGSTOP);
    }
    ~Paused() { resume(); }
    void resume() {
        for (int pid : pids_) ::kill(pid, SIGCONT);
        pids_.clear();
    }

   private:
    std::vector<int> pids_;
};

// A PostgreSQL server process that stops answering while its host stays up: its kernel
// still acknowledges every packet, so neither TCP keepalives nor tcp_user_timeout notice.
// The pool's watchdog must: the request answers 503 instead of waiting for ever (the test
// only ends because that bound holds: the client waits far longer than the bound), and
// the service recovers once the server goes on, with exactly the acknowledged commands in
// the store.
TEST(DatabaseStall, AStoppedServerProcessFailsTheRequestWithin503AndTheServiceRecovers) {
    TestDatabase db;
    const auto port = free_port();
    Process service{{ordo_binary(), "serve", "command", "--insecure-no-auth", "--address",
                     "127.0.0.1:" + std::to_string(port)},
                    {{"ORDO_COMMAND_DATABASE_URL", db.command_url()},
                     {"ORDO_NATS_URL", nats_admin_url()},
                     {"ORDO_NATS_CA_FILE", nats_ca_file()},
                     {"ORDO_LOG_LEVEL", "warn"}}};
    HttpClient client{"127.0.0.1", port, 300s};
    ASSERT_TRUE(eventually([&] {
        try {
            return client.get("/healthz").status == 200;
        } catch (const std::exception&) {
            client.close();
            return false;
        }
    }));
    auto deposit = [&](const std::string& key, int amount) {
        return client.post_json("/v1/accounts/acct-stall/deposits", {{"amount", amount}},
                                {{"Idempotency-Key", key}});
    };
    ASSERT_EQ(deposit("k-1", 10).status, 200);

    const auto backends = pool_backends(db);
    ASSERT_FALSE(backends.empty()) << "the pool's connections carry application_name";
    {
        Paused paused{backends};
        const auto stalled = deposit("k-2", 20);
        EXPECT_TRUE(is_problem(stalled, 503, "unavailable")) << stalled.body;
    }

    // The stopped connection was discarded; a new one serves the retry under the same key.
    HttpResponse retried;
    ASSERT_TRUE(eventually([&] {
        try {
            retried = deposit("k-2", 20);
        } catch (const std::exception&) {
            client.close();
            return false;
        }
        return retried.status != 503;
    }));
    EXPECT_EQ(retried.status, 200) << retried.body;
    ASSERT_EQ(deposit("k-3", 30).status, 200);

    // Exactly the acknowledged commands, once each.
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM ordo.events WHERE stream_id = 'account-acct-stall'"),
              3);
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT sum((payload->>'amount')::bigint) FROM ordo.events "
                     "WHERE stream_id = 'account-acct-stall'"),
              60);
}

}  // namespace
}  // namespace ordo::testing
