#include <gtest/gtest.h>

#include "tests/support/conditions.hpp"
#include "tests/support/saga_stack.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

class SagaRunnerKilled : public ::testing::TestWithParam<std::string> {};

// SIGKILL of the saga runner while sagas are in flight, then a restart: every saga
// completes or compensates, and no step takes effect twice (a resent command carries the
// same id and is answered from the command log).
TEST_P(SagaRunnerKilled, EverySagaFinishesAndNoStepTakesEffectTwice) {
    SagaStack stack{GetParam()};
    stack.receive("sku-k1", 60);
    stack.receive("sku-k2", 60);
    stack.receive("sku-k3", 40);
    for (int a = 0; a < 4; ++a) stack.deposit("acct-k" + std::to_string(a), 5'000);
    constexpr int kOrders = 60;
    auto id = [](int i) { return "o-kill-" + std::to_string(i); };
    for (int i = 0; i < kOrders; ++i) {
        ASSERT_EQ(stack.place(id(i), "acct-k" + std::to_string(i % 4),
                              {{i % 2 ? "sku-k1" : "sku-k2", 1 + i % 3, 100}, {"sku-k3", 1, 10}}),
                  202);
        if (i == kOrders / 3) {
            // Mid-flight: some sagas done, some running, most not started.
            ASSERT_TRUE(eventually([&] {
                auto s = stack.saga(id(0));
                return s.is_object() && s.value("status", "running") != "running";
            }));
            stack.kill_sagas();
        }
    }
    stack.start_sagas();
    for (int i = 0; i < kOrders; ++i) {
        const auto status = stack.settle(id(i));
        EXPECT_TRUE(status == "confirmed" || status == "cancelled") << id(i) << ": " << status;
    }
    std::vector<std::string> violations;
    eventually([&] { return (violations = invariant_violations(stack.database())).empty(); }, 60s,
               50ms);
    for (const auto& v : violations) ADD_FAILURE() << v;
}

INSTANTIATE_TEST_SUITE_P(Modes, SagaRunnerKilled,
                         ::testing::Values("orchestration", "choreography"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ordo::testing
