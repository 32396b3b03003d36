// The inventory decider and state: receipts, reservations, releases, commits, limits, resends,
// late duplicates, snapshots.

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
    EXPECT_EQ(state.settled.find("order-1"), Settlement::committed);
    EXPECT_EQ(state.settled.find("order-2"), Settlement::released);
    EXPECT_EQ(state.settled.find("order-3"), std::nullopt) << "active, not settled";
}

// `orders` orders reserved and then committed (even ones) or released (odd ones), in turn.
Events settled_orders(int orders, int first = 0) {
    Events history;
    for (int i = first; i < first + orders; ++i) {
        const auto order = "order-" + std::to_string(i);
        history.push_back(StockReserved{"sku-1", order, 1});
        if (i % 2 == 0) {
            history.push_back(ReservationCommitted{"sku-1", order, 1});
        } else {
            history.push_back(ReservationReleased{"sku-1", order, 1});
        }
    }
    return history;
}

Events with_stock(Events history) {
    history.insert(history.begin(), StockReceived{"sku-1", 1'000'000});
    return history;
}

// The state no longer grows with every order: however long the history, it holds the
// active reservations and a window of the latest settlements.
TEST(InventoryState, StaysBoundedOverALongHistory) {
    const int orders = 20'000;
    const State state = given(with_stock(settled_orders(orders))).state();
    EXPECT_EQ(state.settled.size(), kRecentSettlements);
    EXPECT_TRUE(state.reservations.empty());
    EXPECT_EQ(state.on_hand, 1'000'000 - orders / 2) << "every commit still counted";
    EXPECT_LT(encode_state(state).dump().size(), 64u * 1024) << "a snapshot stays small";
    // The newest settlements are the ones remembered.
    EXPECT_EQ(state.settled.find("order-" + std::to_string(orders - 1)), Settlement::released);
    EXPECT_EQ(state.settled.find("order-" + std::to_string(orders - 2)), Settlement::committed);
    EXPECT_EQ(state.settled.find("order-0"), std::nullopt);
}

// Within the window every guarantee of the full history holds: a late duplicate of any of
// the last kRecentSettlements settled orders is ignored or refused exactly as before.
TEST(InventoryDecider, LateDuplicatesOfRecentlySettledOrdersChangeNothing) {
    const int orders = static_cast<int>(kRecentSettlements);
    const Events history = with_stock(settled_orders(orders + 500));
    const std::string oldest_kept = "order-" + std::to_string(500);  // even: committed
    const std::string released = "order-" + std::to_string(501);
    given(history).when(ReserveStock{"sku-1", oldest_kept, 1}).then_nothing();
    given(history).when(ReserveStock{"sku-1", released, 1}).then_nothing();
    given(history).when(CommitReservation{"sku-1", oldest_kept}).then_nothing();
    given(history).when(ReleaseReservation{"sku-1", released}).then_nothing();
    given(history)
        .when(ReleaseReservation{"sku-1", oldest_kept})
        .then_rejected("reservation_committed");
    given(history).when(CommitReservation{"sku-1", released}).then_rejected("no_reservation");
}

// An order settled longer ago than the window is decided like one never seen. The process
// layer never sends it such a command (docs/security.md, "Bounded state"); this pins what
// the decider does if something else did.
TEST(InventoryDecider, AnOrderSettledBeyondTheWindowIsForgotten) {
    const Events history = with_stock(settled_orders(static_cast<int>(kRecentSettlements) + 2));
    given(history)
        .when(ReserveStock{"sku-1", "order-0", 1})
        .then({StockReserved{"sku-1", "order-0", 1}});
    given(history).when(CommitReservation{"sku-1", "order-0"}).then_rejected("no_reservation");
}

// A blind release (compensation before any reservation arrived) is remembered like any
// other settlement, so the reservation arriving after it is still refused.
TEST(InventoryDecider, ABlindReleaseStillFencesOffALateReservation) {
    Events history = with_stock({ReservationReleased{"sku-1", "order-late", 0}});
    const Events more = settled_orders(static_cast<int>(kRecentSettlements) - 1);
    history.insert(history.end(), more.begin(), more.end());
    given(history).when(ReserveStock{"sku-1", "order-late", 1}).then_nothing();
}

// What the state holds is a function of the history alone: folding it in one go or resuming
// from a snapshot of any prefix gives the same state.
TEST(InventoryState, ResumingFromASnapshotGivesTheSameState) {
    const Events history = with_stock(settled_orders(static_cast<int>(kRecentSettlements) + 300));
    const State whole = given(history).state();
    for (std::size_t cut : {std::size_t{1}, std::size_t{700}, history.size() - 1}) {
        auto resumed = decode_state(nlohmann::json::parse(
            encode_state(
                given(Events(history.begin(), history.begin() + static_cast<long>(cut))).state())
                .dump()));
        ASSERT_TRUE(resumed.has_value());
        State state = std::move(*resumed);
        for (std::size_t i = cut; i < history.size(); ++i)
            state = evolve(std::move(state), history[i]);
        EXPECT_EQ(state, whole) << "cut at " << cut;
    }
}

}  // namespace
}  // namespace ordo::domain::inventory
