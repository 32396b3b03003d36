// The connection budget: the total cap comes first, and no client address takes every place.

#include "platform/core/connection_budget.hpp"

#include <gtest/gtest.h>

namespace ordo::platform {
namespace {

using Verdict = ConnectionBudget::Verdict;

TEST(ConnectionBudget, OneClientCannotTakeEveryConnection) {
    ConnectionBudget budget{4, 2};
    EXPECT_EQ(budget.admit("10.0.0.1"), Verdict::admitted);
    EXPECT_EQ(budget.admit("10.0.0.1"), Verdict::admitted);
    EXPECT_EQ(budget.admit("10.0.0.1"), Verdict::over_client);
    EXPECT_EQ(budget.admit("10.0.0.2"), Verdict::admitted);
    EXPECT_EQ(budget.open(), 3U);
    EXPECT_EQ(budget.open_from("10.0.0.1"), 2U);
}

TEST(ConnectionBudget, TheTotalCapComesFirst) {
    ConnectionBudget budget{2, 2};
    EXPECT_EQ(budget.admit("a"), Verdict::admitted);
    EXPECT_EQ(budget.admit("b"), Verdict::admitted);
    EXPECT_EQ(budget.admit("c"), Verdict::over_total);
    EXPECT_EQ(budget.open_from("c"), 0U);
}

TEST(ConnectionBudget, AReleasedPlaceServesTheNextClient) {
    ConnectionBudget budget{2, 1};
    EXPECT_EQ(budget.admit("a"), Verdict::admitted);
    EXPECT_EQ(budget.admit("a"), Verdict::over_client);
    budget.release("a");
    EXPECT_EQ(budget.open(), 0U);
    EXPECT_EQ(budget.open_from("a"), 0U);
    EXPECT_EQ(budget.admit("a"), Verdict::admitted);
    // Releasing what was never admitted changes nothing.
    budget.release("nobody");
    EXPECT_EQ(budget.open(), 1U);
}

}  // namespace
}  // namespace ordo::platform
