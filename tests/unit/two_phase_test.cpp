// Two-phase commit recovery's gid format and in-doubt decision rule.

#include <gtest/gtest.h>

#include "app/two_phase.hpp"
#include "platform/core/errors.hpp"

namespace ordo::app::two_phase {
namespace {

constexpr const char* kGlobal = "0af7651916cd43dd8448eb211c80319c";

TEST(TwoPhaseGid, FormatsAndParsesBackEveryParticipant) {
    ParticipantGid gid{kGlobal, 1, {"inventory", "payments_2"}};
    auto text = format_gid(gid);
    EXPECT_EQ(text, "ordo-2pc:0af7651916cd43dd8448eb211c80319c:1:inventory,payments_2");
    auto parsed = parse_gid(text);
    ASSERT_TRUE(parsed);
    EXPECT_EQ(*parsed, gid);
    EXPECT_EQ(parsed->database(), "payments_2");
}

TEST(TwoPhaseGid, RefusesToFormatWhatRecoveryCouldNotReadBack) {
    const std::vector<ParticipantGid> bad{
        {"0AF7651916CD43DD8448EB211C80319C", 0, {"a", "b"}},          // upper case
        {"0af7651916cd43dd8448eb211c8031", 0, {"a", "b"}},            // short global id
        {kGlobal, 2, {"a", "b"}},                                     // no such participant
        {kGlobal, 0, {"a"}},                                          // one participant is no 2PC
        {kGlobal, 0, {"a", "b", "c", "d", "e", "f", "g", "h", "i"}},  // more than 8
        {kGlobal, 0, {"a", "Payments"}},                              // not a plain name
        {kGlobal, 0, {"a", "pay-ments"}},
        {kGlobal, 0, {"a", "x'; DROP TABLE stock; --"}},
        {kGlobal, 0, {"a", ""}},
        {kGlobal, 0, {"9lives", "b"}},
        {kGlobal, 0, {std::string(63, 'a'), std::string(63, 'b'), std::string(63, 'c')}},  // > 200
    };
    for (const auto& gid : bad) {
        EXPECT_THROW(format_gid(gid), platform::InvalidInput)
            << gid.global_id << " " << gid.participant << " " << gid.databases.size();
    }
}

TEST(TwoPhaseGid, TakesOnlyItsOwnSpellingAsOrdos) {
    for (const char* foreign : {
             "",
             "tx-42",
             "ordo-2pc:",
             "ordo-2pc:0af7651916cd43dd8448eb211c80319c:1:inventory",       // one database
             "ordo-2pc:0af7651916cd43dd8448eb211c80319c:01:inventory,pay",  // two-digit index
             "ordo-2pc:0af7651916cd43dd8448eb211c80319c:2:inventory,pay",   // index past the end
             "ordo-2pc:0af7651916cd43dd8448eb211c80319c:1:inventory,pay:",  // trailing part
             "ordo-2pc:0af7651916cd43dd8448eb211c80319c:1:inventory,,pay",  // empty database
             "ordo-2pc:0af7651916cd43dd8448eb211c80319c:x:inventory,pay",
             "ORDO-2PC:0af7651916cd43dd8448eb211c80319c:1:inventory,pay",
         }) {
        EXPECT_FALSE(parse_gid(foreign)) << foreign;
    }
}

TEST(TwoPhaseGid, SafeGidsAreThoseThatNeedNoEscapingToBeRead) {
    EXPECT_TRUE(is_safe_gid(format_gid({kGlobal, 0, {"inventory", "payments"}})));
    EXPECT_TRUE(is_safe_gid("foreign.tx-1+2"));
    EXPECT_TRUE(is_safe_gid(std::string(200, 'g')));
    for (const std::string& bad :
         {std::string{}, std::string(201, 'g'), std::string{"x'; DROP TABLE stock; --"},
          std::string{"a b"}, std::string{"a\\b"}, std::string{"caf\xc3\xa9"}}) {
        EXPECT_FALSE(is_safe_gid(bad)) << bad;
    }
}

using enum ParticipantState;

TEST(TwoPhaseDecision, CommitsWhenEveryParticipantPreparedOrCommitted) {
    EXPECT_EQ(decide({prepared, prepared}), Decision::commit);
    EXPECT_EQ(decide({prepared, committed}), Decision::commit);
    EXPECT_EQ(decide({committed, prepared, prepared}), Decision::commit);
}

TEST(TwoPhaseDecision, RollsBackWhenAParticipantNeverPrepared) {
    EXPECT_EQ(decide({prepared, absent}), Decision::rollback);
    EXPECT_EQ(decide({absent, prepared, prepared}), Decision::rollback);
    // An absent participant proves no commit was ever sent, whatever the unknown one did.
    EXPECT_EQ(decide({prepared, unknown, absent}), Decision::rollback);
}

TEST(TwoPhaseDecision, LeavesItToAnOperatorWhenAParticipantCannotBeAsked) {
    EXPECT_EQ(decide({prepared, unknown}), Decision::undecided);
    EXPECT_EQ(decide({committed, unknown}), Decision::undecided);
    EXPECT_EQ(decide({}), Decision::undecided);
}

}  // namespace
}  // namespace ordo::app::two_phase
