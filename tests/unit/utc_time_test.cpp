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

TEST(UtcTime, ParsesWhatItFormats) {
    const system_clock::time_point at{microseconds{1796378712123456}};
    EXPECT_EQ(parse_utc(format_utc(at)), at);
    EXPECT_EQ(parse_utc("2026-12-04T10:05:12.123Z"),
              system_clock::time_point{milliseconds{1796378712123}});
    EXPECT_EQ(parse_utc("2026-12-04T10:05:12Z"), system_clock::time_point{seconds{1796378712}});
    EXPECT_EQ(parse_utc("2024-02-29T00:00:00.5Z"),
              system_clock::time_point{milliseconds{1709164800500}});
}

TEST(UtcTime, RefusesWhatItDoesNotWrite) {
    for (const char* text :
         {"", "2026-12-04", "2026-12-04T10:05:12", "2026-12-04T10:05:12.Z",
          "2026-12-04T10:05:12.123+01:00", "2026-12-04 10:05:12.123Z", "2026-13-04T10:05:12Z",
          "2026-02-30T10:05:12Z", "2026-12-04T24:05:12Z", "2026-12-04T10:05:12.1234567890Z",
          "2026-12-04T10:05:12.123Zjunk", "x026-12-04T10:05:12Z"}) {
        EXPECT_EQ(parse_utc(text), std::nullopt) << text;
    }
}

}  // namespace
}  // namespace ordo::platform
