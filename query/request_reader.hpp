// Strict reading of a GET's path parameters, query string and headers for the Query API's
// routes: every problem is collected with the field it concerns, so one answer lists them all.
#pragma once

#include <chrono>
#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "eventstore/events.hpp"
#include "platform/http/http.hpp"
#include "query/event_feed.hpp"

namespace ordo::query {

inline constexpr std::chrono::milliseconds kDefaultWait{2000};
inline constexpr std::chrono::milliseconds kMaxWait{10000};

// 422 validation_failed with `errors`.
platform::http::Response invalid(std::vector<platform::http::FieldError> errors);

// Digits only, no sign: "007" is 7. nullopt when it is not a number at all; values beyond
// int64 saturate, so that range checks report them as too large.
std::optional<std::int64_t> parse_count(std::string_view text);

// The consistency a request asks for: the position to wait for, and how long at most.
struct Consistency {
    std::optional<eventstore::ShardToken> token;
    std::chrono::milliseconds wait = kDefaultWait;
};

// Reads one request, collecting every problem with its field ("path.sku", "query.limit",
// "X-Consistency-Token") into `errors`. Each reader returns its value, or nullopt (or the
// fallback) having recorded why.
class RequestReader {
   public:
    RequestReader(const platform::http::Request& request,
                  std::vector<platform::http::FieldError>& errors)
        : request_{request}, errors_{errors} {}

    // An id path parameter: 1 to 64 characters of [A-Za-z0-9._-].
    std::optional<std::string> path_id(const char* name);
    // A W3C trace id: 32 lower-case hex digits.
    std::optional<std::string> path_trace_id(const char* name);

    // The raw query parameter, null when absent.
    const std::string* query(const char* name) const;
    // A required id query parameter.
    std::optional<std::string> id(const char* name);
    // A comma-separated list of 1 to `max` ids, each once; empty when absent.
    std::vector<std::string> id_list(const char* name, std::size_t max);
    std::optional<std::string> one_of(const char* name,
                                      std::initializer_list<std::string_view> allowed,
                                      const char* message);
    std::int64_t integer(const char* name, std::int64_t min, std::int64_t max,
                         std::int64_t fallback);
    // A position of the events API over `start`'s shards; nullopt when absent or malformed.
    std::optional<FeedPosition> feed_position(const char* name, const FeedPosition& start);

    // X-Consistency-Token and ?wait_ms=. A wait beyond the cap is cut to it: the cap is the
    // server's limit, not a mistake of the client's.
    Consistency consistency();

    // Unknown parameters are refused, so that a misspelt one (`wait_msec`) is not ignored.
    void only(std::initializer_list<std::string_view> known);

   private:
    static std::string field(const char* name) { return std::string{"query."} + name; }
    const platform::http::Request& request_;
    std::vector<platform::http::FieldError>& errors_;
};

}  // namespace ordo::query
