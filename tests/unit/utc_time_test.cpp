// The one UTC time format, in C++ (tests/integration/utc_time_test.cpp checks PostgreSQL's).
#include "platform/core/utc_time.hpp"

#include <gtest/gtest.h>

namespace ordo::platform {
namespace {

using namespace std::chrono;

TEST(UtcTime, FormatsRfc3339InUtcWithMicrosecondsOrMilliseconds) {
    const system_clock::time_point at{microseconds{1796378712123456}};
    EXPECT_EQ(format_utc(at), "2026-12-04T10:05:12.123456Z");
    EXPECT_EQ(format_utc(at, TimePrecision::milliseconds), "2026-12-04T10:05:12.123Z");
    EXPECT_EQ(format_utc(system_clock::time_point{}), "1970-01-01T00:00:00.000000Z");
    EXPECT_EQ(format_utc_ms(1796378712123), "2026-12-04T10:05:12.123Z");
    EXPECT_EQ(format_utc_ms(1796378712999, TimePrecision::microseconds),
              "2026-12-04T10:05:12.999000Z");
}

}  // namespace
}  // namespace ordo::platform
