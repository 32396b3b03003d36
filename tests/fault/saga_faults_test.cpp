// Fault, in both saga modes: runners killed mid-flight (every saga finishes, no step twice), and
// the mode switched (orders in flight finish in theirs).

#include <gtest/gtest.h>

#include "tests/support/conditions.hpp"
#include "tests/support/saga_stack.hpp"
#include "tests/support/test_database.hpp"

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
    expect_invariants(stack);
}

INSTANTIATE_TEST_SUITE_P(Modes, SagaRunnerKilled,
                         ::testing::Values("orchestration", "choreography"),
                         [](const auto& info) { return info.param; });

class SagaModeSwitched : public ::testing::TestWithParam<std::string> {};

// How many of the orders named `prefix...` have processes of `mode`.
std::int64_t orders_with_processes(const TestDatabase& db, const std::string& mode,
                                   const std::string& prefix) {
    const std::string category =
        mode == "orchestration" ? "saga.fulfillment-" : "orders.fulfillment-";
    return scalar(db.admin_url(), "SELECT count(*) FROM ordo.streams WHERE stream_id LIKE '" +
                                      category + prefix + "%'");
}

// An operator switches ORDO_SAGA_MODE with orders in flight: those finish in the mode they
// started in, new orders start in the new one, and no order — in flight or long finished —
// gets the processes of both.
TEST_P(SagaModeSwitched, OrdersInFlightFinishAsTheyStartedAndNewOnesUseTheNewMode) {
    const std::string from = GetParam();
    const std::string to = from == "orchestration" ? "choreography" : "orchestration";
    SagaStack stack{from};
    stack.receive("sku-m", 100);
    stack.deposit("acct-m", 100'000);
    stack.deposit("acct-n", 100'000);
    ASSERT_EQ(stack.place("o-done", "acct-n", {{"sku-m", 1, 10}}), 202);
    ASSERT_EQ(stack.settle("o-done"), "confirmed");

    // Payments down for acct-m: these orders' sagas start and wait on their authorization.
    stack.set_payments_down("acct-m", true);
    constexpr int kInFlight = 5;
    auto old_id = [](int i) { return "o-old-" + std::to_string(i); };
    for (int i = 0; i < kInFlight; ++i) {
        ASSERT_EQ(stack.place(old_id(i), "acct-m", {{"sku-m", 1, 10}}), 202);
    }
    ASSERT_TRUE(eventually(
        [&] { return orders_with_processes(stack.database(), from, "o-old-") == kInFlight; }));
    // None has ended: they are in flight.
    EXPECT_EQ(scalar(stack.database().admin_url(),
                     "SELECT count(*) FROM ordo.events WHERE stream_id LIKE 'order-o-old-%' AND "
                     "event_type IN ('OrderConfirmed', 'OrderCancelled')"),
              0);

    stack.switch_mode(to);
    stack.set_payments_down("acct-m", false);
    auto cancel = stack.commands().post_json("/v1/orders/" + old_id(0) + "/cancel",
                                             {{"reason", "changed my mind"}});
    ASSERT_TRUE(cancel.status == 202 || cancel.status == 409) << cancel.body;
    for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(stack.place("o-new-" + std::to_string(i), "acct-n", {{"sku-m", 1, 10}}), 202);
    }

    for (int i = 0; i < kInFlight; ++i) {
        const auto status = stack.settle(old_id(i));
        EXPECT_TRUE(status == "confirmed" || status == "cancelled") << old_id(i) << ": " << status;
        EXPECT_EQ(stack.saga(old_id(i))["mode"], from) << old_id(i);
    }
    if (cancel.status == 202) {
        EXPECT_EQ(stack.order_status(old_id(0)), "cancelled");
    }
    for (int i = 0; i < 3; ++i) {
        const auto id = "o-new-" + std::to_string(i);
        EXPECT_EQ(stack.settle(id), "confirmed") << id;
        EXPECT_EQ(stack.saga(id)["mode"], to) << id;
    }
    EXPECT_EQ(stack.saga("o-done")["mode"], from);
    EXPECT_EQ(orders_with_processes(stack.database(), to, "o-old-"), 0);
    EXPECT_EQ(orders_with_processes(stack.database(), to, "o-done"), 0);
    EXPECT_EQ(orders_with_processes(stack.database(), from, "o-new-"), 0);
    expect_invariants(stack);
}

INSTANTIATE_TEST_SUITE_P(Modes, SagaModeSwitched,
                         ::testing::Values("orchestration", "choreography"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace ordo::testing
