// A test fixture: command, projector, query and saga processes over one test database, with
// helpers that drive orders, and the API's invariants checked against the store and the
// read models.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/http_client.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {

// The whole write-to-read path as real processes over one test database: `ordo serve
// command`, `projector`, `query` and `sagas` in the given mode. No relay: the projector and
// the saga intake read the store, so tests need no JetStream stream of their own.
class SagaStack {
   public:
    explicit SagaStack(std::string mode, std::map<std::string, std::string> extra_env = {});
    ~SagaStack();

    HttpClient commands() const;
    HttpClient queries() const;
    const TestDatabase& database() const { return db_; }
    const std::string& mode() const { return mode_; }

    // The saga runner: SIGKILL it, start it again; or stop it and start it in another mode,
    // as an operator switches ORDO_SAGA_MODE.
    void kill_sagas();
    void start_sagas();
    void switch_mode(const std::string& mode);

    // While down, every authorization on `account` fails with a transient error.
    void set_payments_down(const std::string& account, bool down);

    // Stock, funds and orders through the Command API; each asserts success.
    void receive(const std::string& sku, std::int64_t quantity);
    void deposit(const std::string& account, std::int64_t amount);
    // POST /v1/orders; returns the HTTP status.
    int place(const std::string& order_id, const std::string& account,
              const std::vector<std::tuple<std::string, std::int64_t, std::int64_t>>& lines);

    // The order's status from the Query API ("pending", "confirmed", "cancelled"; "" if unknown).
    std::string order_status(const std::string& order_id);
    // Waits until the order is confirmed or cancelled and its saga has ended; its status.
    std::string settle(const std::string& order_id);
    nlohmann::json saga(const std::string& order_id);

   private:
    std::unique_ptr<Process> start(const std::string& component, std::uint16_t port);

    TestDatabase db_;
    std::string mode_;
    std::map<std::string, std::string> env_;
    std::uint16_t command_port_, query_port_;
    std::unique_ptr<Process> command_, projector_, query_, sagas_;
};

// Checks every invariant of the API against the event store (the truth) and the read
// models, once everything is quiet; returns the violations (empty when all hold).
std::vector<std::string> invariant_violations(const TestDatabase& db);
// Waits for the read models, which trail the store by a moment, until every invariant
// holds; then reports each violation still there as a test failure.
void expect_invariants(const TestDatabase& db);

}  // namespace ordo::testing
