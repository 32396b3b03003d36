// The Store contract (tests/support/store_contract.hpp) on PostgreSQL, as the command
// service's role sees it.
#include "eventstore/event_store.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/store_contract.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

class PostgresHarness {
   public:
    eventstore::Store& store() { return store_; }
    // now() is a transaction's start: 2 ms later every new transaction reads a later one.
    void let_time_pass() { std::this_thread::sleep_for(std::chrono::milliseconds{2}); }

   private:
    TestDatabase db_;
    platform::pg::Pool pool_{platform::pg::PoolOptions{
        .url = db_.command_url(), .size = 8, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::Upcasters upcasters_ = contract_upcasters();
    eventstore::EventStore store_{pool_, nullptr, std::nullopt, &upcasters_};
};

INSTANTIATE_TYPED_TEST_SUITE_P(PostgreSQL, StoreContract, ::testing::Types<PostgresHarness>);

}  // namespace
}  // namespace ordo::testing
