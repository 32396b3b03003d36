// A test fixture: command, projector, query and saga processes over one test database, or a
// store sharded over two, with helpers that drive orders, and the API's invariants checked
// against the store and the read models.
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
//
// With `shards` 2 the store is sharded over the test database (shard 0, which also holds the
// map, the read models and the saga schedule) and a second one on the test stack's second
// PostgreSQL cluster: partition p of 4 on shard p mod 2, so an order's streams spread over
// both. Then a relay per shard runs too, on a JetStream stream of the stack's own, as in
// production: over shards the services wake on the relays' live events.
class SagaStack {
   public:
    explicit SagaStack(std::string mode, std::map<std::string, std::string> extra_env = {},
                       int shards = 1);
    ~SagaStack();

    HttpClient commands() const;
    HttpClient queries() const;
    // The read database, which is also the store's first shard.
    const TestDatabase& database() const { return db_; }
    // Every shard's database, the first one first.
    std::vector<const TestDatabase*> shards() const;
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
    std::unique_ptr<Process> start(const std::string& component, std::uint16_t port,
                                   std::vector<std::string> arguments = {});

    TestDatabase db_;
    std::unique_ptr<TestDatabase> second_;  // the second shard, on a sharded stack
    std::string mode_;
    std::map<std::string, std::string> env_;
    std::uint16_t command_port_, query_port_;
    std::unique_ptr<Process> command_, projector_, query_, sagas_;
    std::vector<std::unique_ptr<Process>> relays_;
};

// Checks every invariant of the API against the event store (the truth: `db`'s events and,
// on a sharded store, `second_shard`'s) and the read models in `db`, once everything is
// quiet; returns the violations (empty when all hold). Over shards, also that each stream's
// events are on one shard only and none on a partition its shard does not own.
std::vector<std::string> invariant_violations(const TestDatabase& db,
                                              const TestDatabase* second_shard = nullptr);
// Waits for the read models, which trail the store by a moment, until every invariant
// holds over all of the stack's shards; then reports each violation still there as a test
// failure.
void expect_invariants(const SagaStack& stack);

}  // namespace ordo::testing
