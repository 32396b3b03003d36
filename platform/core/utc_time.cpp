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

std::optional<std::chrono::system_clock::time_point> parse_utc(std::string_view text) {
    // "YYYY-MM-DDTHH:MM:SS" then ".f" (1 to 9 digits) or nothing, then "Z".
    auto digits = [&](std::size_t at, std::size_t n) -> std::optional<int> {
        if (at + n > text.size()) return std::nullopt;
        int value = 0;
        for (std::size_t i = at; i < at + n; ++i) {
            if (text[i] < '0' || text[i] > '9') return std::nullopt;
            value = value * 10 + (text[i] - '0');
        }
        return value;
    };
    auto year = digits(0, 4), month = digits(5, 2), day = digits(8, 2), hour = digits(11, 2),
         minute = digits(14, 2), second = digits(17, 2);
    if (!year || !month || !day || !hour || !minute || !second || text[4] != '-' ||
        text[7] != '-' || text[10] != 'T' || text[13] != ':' || text[16] != ':') {
        return std::nullopt;
    }
    std::size_t at = 19;
    std::int64_t nanos = 0;
    if (at < text.size() && text[at] == '.') {
        std::size_t n = 0;
        for (++at; at < text.size() && text[at] >= '0' && text[at] <= '9'; ++at, ++n) {
            if (n < 9) nanos = nanos * 10 + (text[at] - '0');
        }
        if (n == 0 || n > 9) return std::nullopt;
        for (; n < 9; ++n) nanos *= 10;
    }
    if (at + 1 != text.size() || text[at] != 'Z') return std::nullopt;
    using namespace std::chrono;
    const year_month_day date{std::chrono::year{*year}, std::chrono::month(*month),
                              std::chrono::day(*day)};
    if (!date.ok() || *hour > 23 || *minute > 59 || *second > 60) return std::nullopt;
    const auto time =
        sys_days{date} + hours{*hour} + minutes{*minute} + seconds{*second} + nanoseconds{nanos};
    return time_point_cast<system_clock::duration>(time);
}

std::string sql_utc(std::string_view column) {
    return "to_char(" + std::string{column} +
           " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";
}

}  // namespace ordo::platform
