// The Store contract (tests/support/store_contract.hpp) on the in-memory store.
#include "eventstore/memory_store.hpp"
#include "platform/core/clock.hpp"
#include "tests/support/store_contract.hpp"

namespace ordo::testing {
namespace {

class MemoryHarness {
   public:
    eventstore::Store& store() { return store_; }
    void let_time_pass() { clock_.advance(std::chrono::minutes{1}); }

   private:
    platform::ManualClock clock_;
    eventstore::Upcasters upcasters_ = contract_upcasters();
    eventstore::MemoryStore store_{&upcasters_, &clock_};
};

INSTANTIATE_TYPED_TEST_SUITE_P(Memory, StoreContract, ::testing::Types<MemoryHarness>);

}  // namespace
}  // namespace ordo::testing
