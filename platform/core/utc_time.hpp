// The one way Ordo writes a point in time: RFC 3339 in UTC with a "Z", as the API, the logs
// and the stored views show it — formatted here in C++, or by PostgreSQL through sql_utc().
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace ordo::platform {

enum class TimePrecision { milliseconds, microseconds };

// "2026-12-04T10:05:12.123456Z" (or ".123Z" in milliseconds).
std::string format_utc(std::chrono::system_clock::time_point at,
                       TimePrecision precision = TimePrecision::microseconds);
// The same for milliseconds since the epoch.
std::string format_utc_ms(std::int64_t epoch_ms,
                          TimePrecision precision = TimePrecision::milliseconds);

// The time format_utc wrote (microseconds or milliseconds, or whole seconds), nullopt for
// anything else; the inverse readers of stored times (recorded_at) use.
std::optional<std::chrono::system_clock::time_point> parse_utc(std::string_view text);

// A select-list expression that formats the timestamptz `column` the way format_utc does in
// microseconds, whatever the session's DateStyle or time zone.
std::string sql_utc(std::string_view column);

}  // namespace ordo::platform
