// HorizonWait: the normal poll, and quick growing retries while committed events are still hidden.

#include <gtest/gtest.h>

#include "eventstore/event_store.hpp"

namespace ordo::eventstore {
namespace {

TEST(HorizonWait, PollsNormallyAndSoonWhileEventsAreHidden) {
    using std::chrono::milliseconds;
    HorizonWait wait{milliseconds(500)};
    EXPECT_EQ(wait.next(false), milliseconds(500));
    EXPECT_EQ(wait.next(true), milliseconds(5));
    EXPECT_EQ(wait.next(true), milliseconds(10));
    EXPECT_EQ(wait.next(true), milliseconds(20));
    for (int i = 0; i < 10; ++i) wait.next(true);
    EXPECT_EQ(wait.next(true), milliseconds(500));  // a long transaction: back to polling
    EXPECT_EQ(wait.next(false), milliseconds(500));
    EXPECT_EQ(wait.next(true), milliseconds(5));  // and soon again next time
}

// A reader that polls rarely (or, in effect, never) still looks for hidden events every
// second: their notification has come and gone.
TEST(HorizonWait, LooksForHiddenEventsAtLeastEverySecondWhateverThePoll) {
    using std::chrono::milliseconds;
    HorizonWait wait{std::chrono::minutes(10)};
    EXPECT_EQ(wait.next(false), std::chrono::minutes(10));
    for (int i = 0; i < 20; ++i) EXPECT_LE(wait.next(true), milliseconds(1000));
    EXPECT_EQ(wait.next(true), milliseconds(1000));
}

}  // namespace
}  // namespace ordo::eventstore
