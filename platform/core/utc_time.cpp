// RFC 3339 UTC times, in C++ and in SQL (see utc_time.hpp).
#include "platform/core/utc_time.hpp"

#include <cstdio>
#include <ctime>

namespace ordo::platform {

std::string format_utc(std::chrono::system_clock::time_point at, TimePrecision precision) {
    using namespace std::chrono;
    const auto secs = floor<seconds>(at);
    const auto micros = duration_cast<microseconds>(at - secs).count();
    const std::time_t t = system_clock::to_time_t(secs);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char buf[64];
    if (precision == TimePrecision::milliseconds) {
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(micros / 1000));
    } else {
        std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%06dZ", tm.tm_year + 1900,
                      tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                      static_cast<int>(micros));
    }
    return buf;
}

std::string format_utc_ms(std::int64_t epoch_ms, TimePrecision precision) {
    return format_utc(std::chrono::system_clock::time_point{std::chrono::milliseconds{epoch_ms}},
                      precision);
}

std::string sql_utc(std::string_view column) {
    return "to_char(" + std::string{column} +
           " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

}  // namespace ordo::platform
