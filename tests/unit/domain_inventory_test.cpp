#include <gtest/gtest.h>

#include "domain/inventory.hpp"
#include "tests/unit/decider_test_support.hpp"

namespace ordo::domain::inventory {
namespace {

ordo::testing::DeciderScenario<State, Event> given(const Events& history) {
    return ordo::testing::DeciderScenario<State, Event>(history);
}

const Events kTenInStock = {StockReceived{"sku-1", 10}};
const Events kFourReserved = {StockReceived{"sku-1", 10}, StockReserved{"sku-1", "order-1", 4}};
const Events kFourReleased = {StockReceived{"sku-1", 10}, StockReserved{"sku-1", "order-1", 4},
                              ReservationReleased{"sku-1", "order-1", 4}};
const Events kFourCommitted = {StockReceived{"sku-1", 10}, StockReserved{"sku-1", "order-1", 4},
                               ReservationCommitted{"sku-1", "order-1", 4}};

TEST(InventoryDecider, ReceivesStockForANewSku) {
    given({}).when(ReceiveStock{"sku-1", 5}).then({StockReceived{"sku-1", 5}});
}

TEST(InventoryDecider, ReceivesStockAtTheQuantityLimits) {
    given({}).when(ReceiveStock{"sku-1", 1}).then({StockReceived{"sku-1", 1}});
    given({}).when(ReceiveStock{"sku-1", 1'000'000}).then({StockReceived{"sku-1", 1'000'000}});
}

TEST(InventoryDecider, RejectsReceiptOutsideTheQuantityLimits) {
    given({}).when(ReceiveStock{"sku-1", 0}).then_rejected("invalid_quantity");
    given({}).when(ReceiveStock{"sku-1", -3}).then_rejected("invalid_quantity");
    given({}).when(ReceiveStock{"sku-1", 1'000'001}).then_rejected("invalid_quantity");
}

TEST(InventoryDecider, ReceiptsAddUpWhileReservationsAreActive) {
    const State state = given(kFourReserved)
                            .when(ReceiveStock{"sku-1", 5})
                            .then({StockReceived{"sku-1", 5}})
                            .state();
    EXPECT_EQ(state.on_hand, 15);
    EXPECT_EQ(state.reserved(), 4);
    EXPECT_EQ(state.available(), 11);
}

TEST(InventoryDecider, RejectsReservationBeyondAvailableStock) {
    given({StockReceived{"sku-1", 3}})
        .when(ReserveStock{"sku-1", "order-1", 4})
        .then_rejected("insufficient_stock");
}

TEST(InventoryDecider, RejectsReservationOfAnUnknownSku) {
    given({}).when(ReserveStock{"sku-1", "order-1", 1}).then_rejected("insufficient_stock");
}

TEST(InventoryDecider, ReservesExactlyTheAvailableStock) {
    const State state = given(kTenInStock)
                            .when(ReserveStock{"sku-1", "order-1", 10})
                            .then({StockReserved{"sku-1", "order-1", 10}})
                            .state();
    EXPECT_EQ(state.available(), 0);
    EXPECT_EQ(state.on_hand, 10);
}

TEST(InventoryDecider, OtherOrdersReservationsReduceAvailableStock) {
    given(kFourReserved)
        .when(ReserveStock{"sku-1", "order-2", 7})
        .then_rejected("insufficient_stock");
    given(kFourReserved)
        .when(ReserveStock{"sku-1", "order-2", 6})
        .then({StockReserved{"sku-1", "order-2", 6}});
}

TEST(InventoryDecider, RejectsReservationOutsideTheQuantityLimits) {
    given(kTenInStock).when(ReserveStock{"sku-1", "order-1", 0}).then_rejected("invalid_quantity");
    given({StockReceived{"sku-1", 20'000}})
        .when(ReserveStock{"sku-1", "order-1", 10'001})
        .then_rejected("invalid_quantity");
    given({StockReceived{"sku-1", 20'000}})
        .when(ReserveStock{"sku-1", "order-1", 10'000})
        .then({StockReserved{"sku-1", "order-1", 10'000}});
}

TEST(InventoryDecider, ResentReservationReservesNothingMore) {
    given(kFourReserved).when(ReserveStock{"sku-1", "order-1", 4}).then_nothing();
}

TEST(InventoryDecider, ResentReservationAfterAReleaseDoesNotReserveAgain) {
    given(kFourReleased).when(ReserveStock{"sku-1", "order-1", 4}).then_nothing();
}

TEST(InventoryDecider, ResentReservationAfterACommitDoesNotReserveAgain) {
    given(kFourCommitted).when(ReserveStock{"sku-1", "order-1", 4}).then_nothing();
}

TEST(InventoryDecider, ReleasesAnActiveReservationWithItsQuantity) {
    const State state = given(kFourReserved)
                            .when(ReleaseReservation{"sku-1", "order-1"})
                            .then({ReservationReleased{"sku-1", "order-1", 4}})
                            .state();
    EXPECT_EQ(state.on_hand, 10);
    EXPECT_EQ(state.reserved(), 0);
    EXPECT_EQ(state.available(), 10);
}

TEST(InventoryDecider, ReleasingWithoutAReservationRecordsAZeroReleaseThatBlocksALateOne) {
    given({}).when(ReleaseReservation{"sku-1", "order-1"}).then_nothing();
    given(kTenInStock)
        .when(ReleaseReservation{"sku-1", "order-1"})
        .then({ReservationReleased{"sku-1", "order-1", 0}});
    Events released = kTenInStock;
    released.push_back(ReservationReleased{"sku-1", "order-1", 0});
    given(released).when(ReserveStock{"sku-1", "order-1", 4}).then_nothing();
    given(released).when(ReleaseReservation{"sku-1", "order-1"}).then_nothing();
}

TEST(InventoryDecider, ReleasingTwiceIsANoOp) {
    given(kFourReleased).when(ReleaseReservation{"sku-1", "order-1"}).then_nothing();
}

TEST(InventoryDecider, RejectsReleaseOfACommittedReservation) {
    given(kFourCommitted)
        .when(ReleaseReservation{"sku-1", "order-1"})
        .then_rejected("reservation_committed");
}

TEST(InventoryDecider, CommitTakesTheReservedQuantityOffHand) {
    const State state = given(kFourReserved)
                            .when(CommitReservation{"sku-1", "order-1"})
                            .then({ReservationCommitted{"sku-1", "order-1", 4}})
                            .state();
    EXPECT_EQ(state.on_hand, 6);
    EXPECT_EQ(state.reserved(), 0);
    EXPECT_EQ(state.available(), 6);
}

TEST(InventoryDecider, CommittingTwiceIsANoOp) {
    given(kFourCommitted).when(CommitReservation{"sku-1", "order-1"}).then_nothing();
}

TEST(InventoryDecider, RejectsCommitWithoutAReservation) {
    given({}).when(CommitReservation{"sku-1", "order-1"}).then_rejected("no_reservation");
    given(kTenInStock).when(CommitReservation{"sku-1", "order-1"}).then_rejected("no_reservation");
    given(kFourReserved)
        .when(CommitReservation{"sku-1", "order-2"})
        .then_rejected("no_reservation");
}

TEST(InventoryDecider, RejectsCommitOfAReleasedReservation) {
    given(kFourReleased)
        .when(CommitReservation{"sku-1", "order-1"})
        .then_rejected("no_reservation");
}

TEST(InventoryDecider, DecidesThroughTheCommandVariant) {
    given(kTenInStock)
        .when(Command{ReserveStock{"sku-1", "order-1", 2}})
        .then({StockReserved{"sku-1", "order-1", 2}});
}

TEST(InventoryState, StartsEmptyAndExistsOnceStockIsReceived) {
    EXPECT_FALSE(State{}.exists());
    const State state = evolve(State{}, StockReceived{"sku-1", 1});
    EXPECT_TRUE(state.exists());
    EXPECT_EQ(state.sku, "sku-1");
}

// on_hand = receipts - committed and available = on_hand - reserved, through a mixed history.
TEST(InventoryState, KeepsTheStockArithmeticThroughAMixedHistory) {
    const Events history = {
        StockReceived{"sku-1", 10},
        StockReserved{"sku-1", "order-1", 3},
        StockReserved{"sku-1", "order-2", 5},
        ReservationCommitted{"sku-1", "order-1", 3},
        StockReceived{"sku-1", 7},
        ReservationReleased{"sku-1", "order-2", 5},
        StockReserved{"sku-1", "order-3", 2},
    };
    State state;
    for (const Event& event : history) {
        state = evolve(std::move(state), event);
        EXPECT_GE(state.available(), 0);
    }
    EXPECT_EQ(state.received, 17);
    EXPECT_EQ(state.on_hand, 17 - 3);
    EXPECT_EQ(state.reserved(), 2);
    EXPECT_EQ(state.available(), 12);
    EXPECT_EQ(state.committed, (std::set<std::string>{"order-1"}));
    EXPECT_EQ(state.released, (std::set<std::string>{"order-2"}));
}

}  // namespace
}  // namespace ordo::domain::inventory
