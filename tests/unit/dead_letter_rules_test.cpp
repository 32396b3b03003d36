// The dead-letter owner's rules: what an operator may ask of a letter, what the projector
// does with it, and the status it settles in.

#include <gtest/gtest.h>

#include "platform/core/errors.hpp"
#include "projections/dead_letters.hpp"

namespace ordo::projections {
namespace {

using S = DeadLetterStatus;

TEST(DeadLetterRules, AParkedLetterCanBeAskedToBeRetriedOrSkipped) {
    EXPECT_EQ(after_request(S::parked, DeadLetterRequest::retry), S::retry_requested);
    EXPECT_EQ(after_request(S::parked, DeadLetterRequest::skip), S::skip_requested);
}

TEST(DeadLetterRules, AskingAgainForWhatWasAskedChangesNothing) {
    EXPECT_EQ(after_request(S::retry_requested, DeadLetterRequest::retry), S::retry_requested);
    EXPECT_EQ(after_request(S::skip_requested, DeadLetterRequest::skip), S::skip_requested);
}

TEST(DeadLetterRules, OnlyAParkedLetterTakesARequest) {
    EXPECT_EQ(after_request(S::retry_requested, DeadLetterRequest::skip), std::nullopt);
    EXPECT_EQ(after_request(S::skip_requested, DeadLetterRequest::retry), std::nullopt);
    for (auto settled : {S::resolved, S::skipped}) {
        EXPECT_EQ(after_request(settled, DeadLetterRequest::retry), std::nullopt);
        EXPECT_EQ(after_request(settled, DeadLetterRequest::skip), std::nullopt);
    }
}

TEST(DeadLetterRules, TheProjectorWaitsAtParkedLettersAndCarriesOutRequests) {
    EXPECT_EQ(settlement_of(S::parked), Settlement::wait);
    EXPECT_EQ(settlement_of(S::retry_requested), Settlement::apply_again);
    EXPECT_EQ(settlement_of(S::skip_requested), Settlement::give_up);
}

TEST(DeadLetterRules, ARetrySettlesResolvedOrParkedAgainAndASkipSkipped) {
    EXPECT_EQ(settled(Settlement::apply_again, true), S::resolved);
    EXPECT_EQ(settled(Settlement::apply_again, false), S::parked);
    EXPECT_EQ(settled(Settlement::give_up, false), S::skipped);
}

TEST(DeadLetterRules, StatusNamesAreTheTablesAndRoundTrip) {
    for (auto s : {S::parked, S::retry_requested, S::skip_requested, S::resolved, S::skipped}) {
        EXPECT_EQ(parse_dead_letter_status(to_string(s)), s);
    }
    EXPECT_STREQ(to_string(S::retry_requested), "retry_requested");
    EXPECT_THROW(parse_dead_letter_status("gone"), platform::InvalidInput);
}

TEST(DeadLetterRules, PoliciesParseByProjection) {
    auto policies = parse_dead_letter_policies("orders=halt, inventory = skip");
    EXPECT_EQ(policies.at("orders"), DeadLetterPolicy::halt);
    EXPECT_EQ(policies.at("inventory"), DeadLetterPolicy::skip);
    EXPECT_STREQ(to_string(DeadLetterPolicy::halt), "halt");
    EXPECT_THROW(parse_dead_letter_policies("orders=stop"), platform::InvalidInput);
}

}  // namespace
}  // namespace ordo::projections
