// The payments decider and state: deposits, holds, voids, captures, limits, resends, late
// duplicates.

#include <gtest/gtest.h>

#include "domain/payments.hpp"
#include "tests/unit/decider_test_support.hpp"

namespace ordo::domain::payments {
namespace {

ordo::testing::DeciderScenario<State, Event> given(const Events& history) {
    return ordo::testing::DeciderScenario<State, Event>(history);
}

const Events kHundredDeposited = {FundsDeposited{"acct-1", 100}};
const Events kFortyHeld = {FundsDeposited{"acct-1", 100},
                           PaymentAuthorized{"acct-1", "order-1", 40}};
const Events kFortyVoided = {FundsDeposited{"acct-1", 100},
                             PaymentAuthorized{"acct-1", "order-1", 40},
                             AuthorizationVoided{"acct-1", "order-1", 40}};
const Events kFortyCaptured = {FundsDeposited{"acct-1", 100},
                               PaymentAuthorized{"acct-1", "order-1", 40},
                               PaymentCaptured{"acct-1", "order-1", 40}};

TEST(PaymentsDecider, DepositsIntoANewAccount) {
    given({}).when(Deposit{"acct-1", 250}).then({FundsDeposited{"acct-1", 250}});
}

TEST(PaymentsDecider, DepositsAtTheAmountLimits) {
    given({}).when(Deposit{"acct-1", 1}).then({FundsDeposited{"acct-1", 1}});
    given({})
        .when(Deposit{"acct-1", 1'000'000'000'000})
        .then({FundsDeposited{"acct-1", 1'000'000'000'000}});
}

TEST(PaymentsDecider, RejectsDepositOutsideTheAmountLimits) {
    given({}).when(Deposit{"acct-1", 0}).then_rejected("invalid_amount");
    given({}).when(Deposit{"acct-1", -5}).then_rejected("invalid_amount");
    given({}).when(Deposit{"acct-1", 1'000'000'000'001}).then_rejected("invalid_amount");
}

TEST(PaymentsDecider, DepositsAddUpWhileHoldsAreActive) {
    const State state =
        given(kFortyHeld).when(Deposit{"acct-1", 10}).then({FundsDeposited{"acct-1", 10}}).state();
    EXPECT_EQ(state.balance, 110);
    EXPECT_EQ(state.held(), 40);
    EXPECT_EQ(state.available(), 70);
}

TEST(PaymentsDecider, AuthorizesWithinAvailableFunds) {
    const State state = given(kHundredDeposited)
                            .when(AuthorizePayment{"acct-1", "order-1", 100})
                            .then({PaymentAuthorized{"acct-1", "order-1", 100}})
                            .state();
    EXPECT_EQ(state.balance, 100);
    EXPECT_EQ(state.available(), 0);
}

TEST(PaymentsDecider, RejectsAuthorizationBeyondAvailableFunds) {
    given(kHundredDeposited)
        .when(AuthorizePayment{"acct-1", "order-1", 101})
        .then_rejected("insufficient_funds");
    given(kFortyHeld)
        .when(AuthorizePayment{"acct-1", "order-2", 61})
        .then_rejected("insufficient_funds");
    given({}).when(AuthorizePayment{"acct-1", "order-1", 1}).then_rejected("insufficient_funds");
}

TEST(PaymentsDecider, RejectsNegativeAuthorization) {
    given(kHundredDeposited)
        .when(AuthorizePayment{"acct-1", "order-1", -1})
        .then_rejected("invalid_amount");
}

// An order may total 0: its authorization holds nothing but is recorded, so capture and
// void work the same for every order.
TEST(PaymentsDecider, AuthorizesAZeroAmountEvenWithoutFunds) {
    const State state = given({})
                            .when(AuthorizePayment{"acct-1", "order-1", 0})
                            .then({PaymentAuthorized{"acct-1", "order-1", 0}})
                            .state();
    EXPECT_FALSE(state.exists());
    given({PaymentAuthorized{"acct-1", "order-1", 0}})
        .when(CapturePayment{"acct-1", "order-1"})
        .then({PaymentCaptured{"acct-1", "order-1", 0}});
}

TEST(PaymentsDecider, ResentAuthorizationHoldsNothingMore) {
    given(kFortyHeld).when(AuthorizePayment{"acct-1", "order-1", 40}).then_nothing();
}

TEST(PaymentsDecider, ResentAuthorizationAfterAVoidDoesNotHoldAgain) {
    given(kFortyVoided).when(AuthorizePayment{"acct-1", "order-1", 40}).then_nothing();
}

TEST(PaymentsDecider, ResentAuthorizationAfterACaptureDoesNotHoldAgain) {
    given(kFortyCaptured).when(AuthorizePayment{"acct-1", "order-1", 40}).then_nothing();
}

TEST(PaymentsDecider, VoidsAnActiveHoldWithItsAmount) {
    const State state = given(kFortyHeld)
                            .when(VoidAuthorization{"acct-1", "order-1"})
                            .then({AuthorizationVoided{"acct-1", "order-1", 40}})
                            .state();
    EXPECT_EQ(state.balance, 100);
    EXPECT_EQ(state.held(), 0);
    EXPECT_EQ(state.available(), 100);
}

TEST(PaymentsDecider, VoidingWithoutAHoldRecordsAZeroVoidThatBlocksALateHold) {
    given({}).when(VoidAuthorization{"acct-1", "order-1"}).then_nothing();
    given(kHundredDeposited)
        .when(VoidAuthorization{"acct-1", "order-1"})
        .then({AuthorizationVoided{"acct-1", "order-1", 0}});
    Events voided = kHundredDeposited;
    voided.push_back(AuthorizationVoided{"acct-1", "order-1", 0});
    given(voided).when(AuthorizePayment{"acct-1", "order-1", 40}).then_nothing();
    given(voided).when(VoidAuthorization{"acct-1", "order-1"}).then_nothing();
}

TEST(PaymentsDecider, VoidingTwiceIsANoOp) {
    given(kFortyVoided).when(VoidAuthorization{"acct-1", "order-1"}).then_nothing();
}

TEST(PaymentsDecider, RejectsVoidOfACapturedPayment) {
    given(kFortyCaptured)
        .when(VoidAuthorization{"acct-1", "order-1"})
        .then_rejected("payment_captured");
}

TEST(PaymentsDecider, CaptureTakesTheHeldAmountOffTheBalance) {
    const State state = given(kFortyHeld)
                            .when(CapturePayment{"acct-1", "order-1"})
                            .then({PaymentCaptured{"acct-1", "order-1", 40}})
                            .state();
    EXPECT_EQ(state.balance, 60);
    EXPECT_EQ(state.held(), 0);
    EXPECT_EQ(state.available(), 60);
}

TEST(PaymentsDecider, CapturingTwiceIsANoOp) {
    given(kFortyCaptured).when(CapturePayment{"acct-1", "order-1"}).then_nothing();
}

TEST(PaymentsDecider, RejectsCaptureWithoutAHold) {
    given({}).when(CapturePayment{"acct-1", "order-1"}).then_rejected("no_authorization");
    given(kHundredDeposited)
        .when(CapturePayment{"acct-1", "order-1"})
        .then_rejected("no_authorization");
    given(kFortyHeld).when(CapturePayment{"acct-1", "order-2"}).then_rejected("no_authorization");
}

TEST(PaymentsDecider, RejectsCaptureOfAVoidedHold) {
    given(kFortyVoided).when(CapturePayment{"acct-1", "order-1"}).then_rejected("no_authorization");
}

TEST(PaymentsDecider, DecidesThroughTheCommandVariant) {
    given(kHundredDeposited)
        .when(Command{AuthorizePayment{"acct-1", "order-1", 5}})
        .then({PaymentAuthorized{"acct-1", "order-1", 5}});
}

TEST(PaymentsState, StartsEmptyAndExistsOnceFundsAreDeposited) {
    EXPECT_FALSE(State{}.exists());
    const State state = evolve(State{}, FundsDeposited{"acct-1", 1});
    EXPECT_TRUE(state.exists());
    EXPECT_EQ(state.account_id, "acct-1");
}

// balance = deposits - captured and available = balance - held, through a mixed history.
TEST(PaymentsState, KeepsTheMoneyArithmeticThroughAMixedHistory) {
    const Events history = {
        FundsDeposited{"acct-1", 100},
        PaymentAuthorized{"acct-1", "order-1", 30},
        PaymentAuthorized{"acct-1", "order-2", 50},
        PaymentCaptured{"acct-1", "order-1", 30},
        FundsDeposited{"acct-1", 20},
        AuthorizationVoided{"acct-1", "order-2", 50},
        PaymentAuthorized{"acct-1", "order-3", 15},
    };
    State state;
    for (const Event& event : history) {
        state = evolve(std::move(state), event);
        EXPECT_GE(state.available(), 0);
    }
    EXPECT_EQ(state.deposited, 120);
    EXPECT_EQ(state.balance, 120 - 30);
    EXPECT_EQ(state.held(), 15);
    EXPECT_EQ(state.available(), 75);
    EXPECT_EQ(state.settled.find("order-1"), Settlement::captured);
    EXPECT_EQ(state.settled.find("order-2"), Settlement::voided);
    EXPECT_EQ(state.settled.find("order-3"), std::nullopt) << "held, not settled";
}

// `orders` holds authorized and then captured (even ones) or voided (odd ones), in turn.
Events settled_orders(int orders) {
    Events history{FundsDeposited{"acct-1", 1'000'000'000}};
    for (int i = 0; i < orders; ++i) {
        const auto order = "order-" + std::to_string(i);
        history.push_back(PaymentAuthorized{"acct-1", order, 10});
        if (i % 2 == 0) {
            history.push_back(PaymentCaptured{"acct-1", order, 10});
        } else {
            history.push_back(AuthorizationVoided{"acct-1", order, 10});
        }
    }
    return history;
}

TEST(PaymentsState, StaysBoundedOverALongHistory) {
    const int orders = 20'000;
    const State state = given(settled_orders(orders)).state();
    EXPECT_EQ(state.settled.size(), kRecentSettlements);
    EXPECT_TRUE(state.holds.empty());
    EXPECT_EQ(state.balance, 1'000'000'000 - 10 * (orders / 2)) << "every capture counted";
    EXPECT_LT(encode_state(state).dump().size(), 64u * 1024) << "a snapshot stays small";
    EXPECT_EQ(state.settled.find("order-" + std::to_string(orders - 1)), Settlement::voided);
    EXPECT_EQ(state.settled.find("order-0"), std::nullopt);
}

TEST(PaymentsDecider, LateDuplicatesOfRecentlySettledOrdersChangeNothing) {
    const Events history = settled_orders(static_cast<int>(kRecentSettlements) + 500);
    const std::string captured = "order-500";
    const std::string voided = "order-501";
    given(history).when(AuthorizePayment{"acct-1", captured, 10}).then_nothing();
    given(history).when(AuthorizePayment{"acct-1", voided, 10}).then_nothing();
    given(history).when(CapturePayment{"acct-1", captured}).then_nothing();
    given(history).when(VoidAuthorization{"acct-1", voided}).then_nothing();
    given(history).when(VoidAuthorization{"acct-1", captured}).then_rejected("payment_captured");
    given(history).when(CapturePayment{"acct-1", voided}).then_rejected("no_authorization");
}

TEST(PaymentsDecider, AnOrderSettledBeyondTheWindowIsForgotten) {
    const Events history = settled_orders(static_cast<int>(kRecentSettlements) + 2);
    given(history)
        .when(AuthorizePayment{"acct-1", "order-0", 10})
        .then({PaymentAuthorized{"acct-1", "order-0", 10}});
}

TEST(PaymentsDecider, ABlindVoidStillFencesOffALateAuthorization) {
    Events history = settled_orders(static_cast<int>(kRecentSettlements) - 1);
    history.insert(history.begin() + 1, AuthorizationVoided{"acct-1", "order-late", 0});
    given(history).when(AuthorizePayment{"acct-1", "order-late", 10}).then_nothing();
}

}  // namespace
}  // namespace ordo::domain::payments
