// The orders decider: placing, cancellation requests, confirmation, cancellation, limits, repeats.

#include <gtest/gtest.h>

#include "domain/orders.hpp"
#include "tests/unit/decider_test_support.hpp"

namespace ordo::domain::orders {
namespace {

ordo::testing::DeciderScenario<State, Event> given(const Events& history) {
    return ordo::testing::DeciderScenario<State, Event>(history);
}

const std::vector<OrderLine> kTwoLines = {{"sku-1", 2, 500}, {"sku-2", 1, 1'250}};
const OrderPlaced kPlaced{"order-1", "cust-1", "acct-1", kTwoLines, 2'250};
const Events kPending = {kPlaced};
const Events kCancellationRequested = {kPlaced,
                                       OrderCancellationRequested{"order-1", "changed my mind"}};
const Events kConfirmed = {kPlaced, OrderConfirmed{"order-1"}};
const Events kCancelled = {kPlaced, OrderCancelled{"order-1", "insufficient_stock"}};

PlaceOrder place_with(std::vector<OrderLine> lines) {
    return {"order-1", "cust-1", "acct-1", std::move(lines)};
}

TEST(OrdersDecider, PlacesAnOrderWithItsTotal) {
    const State state = given({}).when(place_with(kTwoLines)).then({kPlaced}).state();
    EXPECT_EQ(state.status, Status::kPending);
    EXPECT_EQ(state.total, 2 * 500 + 1 * 1'250);
    EXPECT_EQ(state.lines, kTwoLines);
    EXPECT_EQ(state.customer_id, "cust-1");
    EXPECT_EQ(state.account_id, "acct-1");
    EXPECT_TRUE(state.cancel_reason.empty());
}

TEST(OrdersDecider, PlacesAFreeOrder) {
    given({})
        .when(place_with({{"sku-1", 3, 0}}))
        .then({OrderPlaced{"order-1", "cust-1", "acct-1", {{"sku-1", 3, 0}}, 0}});
}

TEST(OrdersDecider, PlacesTheLargestOrderWithoutOverflow) {
    std::vector<OrderLine> lines;
    lines.reserve(100);
    for (int i = 0; i < 100; ++i)
        lines.push_back({"sku-" + std::to_string(i), 10'000, 100'000'000});
    const State state = given({}).when(place_with(lines)).state();
    EXPECT_EQ(state.status, Status::kPending);
    EXPECT_EQ(state.total, std::int64_t{100} * 10'000 * 100'000'000);
}

TEST(OrdersDecider, PlacesAnOrderInTheAccountsCurrencyAndRefusesAnother) {
    const std::vector<OrderLine> euros = {{"sku-1", 2, 500, "EUR"}, {"sku-2", 1, 1'250, "EUR"}};
    given({})
        .when(place_with(euros))
        .then({OrderPlaced{"order-1", "cust-1", "acct-1", euros, 2'250}});
    // Payments carry no currency: a dollar order would be charged in euros.
    given({})
        .when(place_with({{"sku-1", 2, 500, "USD"}, {"sku-2", 1, 1'250, "USD"}}))
        .then_rejected("unsupported_currency");
}

TEST(OrdersDecider, RejectsLinesInTwoCurrenciesOrInNoneKnown) {
    given({})
        .when(place_with({{"sku-1", 1, 5, "EUR"}, {"sku-2", 1, 5, "USD"}}))
        .then_rejected("mixed_currencies");
    given({}).when(place_with({{"sku-1", 1, 5, "eur"}})).then_rejected("invalid_currency");
}

TEST(OrdersDecider, RejectsPlacingAnExistingOrder) {
    given(kPending).when(place_with(kTwoLines)).then_rejected("order_exists");
    given(kConfirmed).when(place_with(kTwoLines)).then_rejected("order_exists");
    given(kCancelled).when(place_with(kTwoLines)).then_rejected("order_exists");
}

TEST(OrdersDecider, RejectsAnOrderWithoutLinesOrWithTooMany) {
    given({}).when(place_with({})).then_rejected("invalid_lines");
    std::vector<OrderLine> lines;
    lines.reserve(101);
    for (int i = 0; i < 101; ++i) lines.push_back({"sku-" + std::to_string(i), 1, 1});
    given({}).when(place_with(lines)).then_rejected("invalid_lines");
    lines.pop_back();
    given({})
        .when(place_with(lines))
        .then({OrderPlaced{"order-1", "cust-1", "acct-1", lines, 100}});
}

TEST(OrdersDecider, RejectsTheSameSkuTwice) {
    given({})
        .when(place_with({{"sku-1", 1, 10}, {"sku-2", 1, 10}, {"sku-1", 2, 10}}))
        .then_rejected("duplicate_sku");
}

TEST(OrdersDecider, RejectsLineQuantityOutsideTheLimits) {
    given({}).when(place_with({{"sku-1", 0, 10}})).then_rejected("invalid_quantity");
    given({}).when(place_with({{"sku-1", -1, 10}})).then_rejected("invalid_quantity");
    given({}).when(place_with({{"sku-1", 10'001, 10}})).then_rejected("invalid_quantity");
}

TEST(OrdersDecider, RejectsUnitPriceOutsideTheLimits) {
    given({}).when(place_with({{"sku-1", 1, -1}})).then_rejected("invalid_price");
    given({}).when(place_with({{"sku-1", 1, 100'000'001}})).then_rejected("invalid_price");
    given({})
        .when(place_with({{"sku-1", 1, 100'000'000}}))
        .then(
            {OrderPlaced{"order-1", "cust-1", "acct-1", {{"sku-1", 1, 100'000'000}}, 100'000'000}});
}

TEST(OrdersDecider, RecordsTheCustomersCancellationRequest) {
    const State state = given(kPending)
                            .when(RequestCancellation{"order-1", "changed my mind"})
                            .then({OrderCancellationRequested{"order-1", "changed my mind"}})
                            .state();
    EXPECT_EQ(state.status, Status::kPending);
    EXPECT_TRUE(state.cancellation_requested);
    EXPECT_EQ(state.cancellation_request_reason, "changed my mind");
}

TEST(OrdersDecider, RequestingCancellationTwiceIsANoOp) {
    given(kCancellationRequested).when(RequestCancellation{"order-1", "again"}).then_nothing();
}

TEST(OrdersDecider, RejectsCancellationRequestInAFinalOrUnknownState) {
    given({}).when(RequestCancellation{"order-1", ""}).then_rejected("order_not_found");
    given(kConfirmed).when(RequestCancellation{"order-1", ""}).then_rejected("order_confirmed");
    given(kCancelled).when(RequestCancellation{"order-1", ""}).then_rejected("order_cancelled");
}

TEST(OrdersDecider, ConfirmsAPendingOrder) {
    const State state =
        given(kPending).when(ConfirmOrder{"order-1"}).then({OrderConfirmed{"order-1"}}).state();
    EXPECT_EQ(state.status, Status::kConfirmed);
}

TEST(OrdersDecider, ConfirmingTwiceIsANoOp) {
    given(kConfirmed).when(ConfirmOrder{"order-1"}).then_nothing();
}

TEST(OrdersDecider, RejectsConfirmationOfAnUnknownOrCancelledOrder) {
    given({}).when(ConfirmOrder{"order-1"}).then_rejected("order_not_found");
    given(kCancelled).when(ConfirmOrder{"order-1"}).then_rejected("order_cancelled");
}

TEST(OrdersDecider, RejectsConfirmationOnceTheCustomerAskedToCancel) {
    given(kCancellationRequested)
        .when(ConfirmOrder{"order-1"})
        .then_rejected("cancellation_requested");
}

TEST(OrdersDecider, CancelsAPendingOrderWithItsReason) {
    const State state = given(kPending)
                            .when(CancelOrder{"order-1", "insufficient_funds"})
                            .then({OrderCancelled{"order-1", "insufficient_funds"}})
                            .state();
    EXPECT_EQ(state.status, Status::kCancelled);
    EXPECT_EQ(state.cancel_reason, "insufficient_funds");
}

TEST(OrdersDecider, CancelsAfterTheCustomersRequest) {
    given(kCancellationRequested)
        .when(CancelOrder{"order-1", "customer_request"})
        .then({OrderCancelled{"order-1", "customer_request"}});
}

TEST(OrdersDecider, AcceptsEveryKnownCancelReason) {
    for (std::string_view reason : kCancelReasons) {
        given(kPending)
            .when(CancelOrder{"order-1", std::string(reason)})
            .then({OrderCancelled{"order-1", std::string(reason)}});
    }
}

TEST(OrdersDecider, RejectsAnUnknownCancelReason) {
    given(kPending).when(CancelOrder{"order-1", "bored"}).then_rejected("invalid_reason");
    given(kPending).when(CancelOrder{"order-1", ""}).then_rejected("invalid_reason");
}

TEST(OrdersDecider, CancellingTwiceIsANoOp) {
    given(kCancelled).when(CancelOrder{"order-1", "timeout"}).then_nothing();
}

TEST(OrdersDecider, RejectsCancellationOfAnUnknownOrConfirmedOrder) {
    given({}).when(CancelOrder{"order-1", "timeout"}).then_rejected("order_not_found");
    given(kConfirmed).when(CancelOrder{"order-1", "timeout"}).then_rejected("order_confirmed");
}

TEST(OrdersDecider, DecidesThroughTheCommandVariant) {
    given(kPending).when(Command{ConfirmOrder{"order-1"}}).then({OrderConfirmed{"order-1"}});
}

TEST(OrdersStatus, NamesEveryStatusAsTheQueryApiDoes) {
    EXPECT_EQ(to_string(Status::kNone), "none");
    EXPECT_EQ(to_string(Status::kPending), "pending");
    EXPECT_EQ(to_string(Status::kConfirmed), "confirmed");
    EXPECT_EQ(to_string(Status::kCancelled), "cancelled");
}

}  // namespace
}  // namespace ordo::domain::orders
