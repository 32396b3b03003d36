// The Query API's strict request reading (see request_reader.hpp).
#include "query/request_reader.hpp"

#include <algorithm>
#include <charconv>
#include <limits>

#include "domain/ids.hpp"

namespace ordo::query {

using platform::http::FieldError;
using platform::http::problem;
using platform::http::Response;

Response invalid(std::vector<FieldError> errors) {
    return problem(422, "validation_failed", "the request has invalid fields", std::move(errors));
}

std::optional<std::int64_t> parse_count(std::string_view text) {
    if (text.empty()) return std::nullopt;
    if (!std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::int64_t value = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec == std::errc::result_out_of_range) return std::numeric_limits<std::int64_t>::max();
    if (ec != std::errc{} || end != text.data() + text.size()) return std::nullopt;
    return value;
}

std::optional<std::string> RequestReader::path_id(const char* name) {
    const auto& value = request_.params.at(name);
    if (domain::is_valid_id(value)) return value;
    errors_.push_back(
        {std::string{"path."} + name, "must be 1 to 64 characters of [A-Za-z0-9._-]"});
    return std::nullopt;
}

std::optional<std::string> RequestReader::path_trace_id(const char* name) {
    const auto& value = request_.params.at(name);
    bool ok = value.size() == 32 && std::all_of(value.begin(), value.end(), [](char c) {
                  return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
              });
    if (ok) return value;
    errors_.push_back({std::string{"path."} + name, "must be 32 lower-case hexadecimal digits"});
    return std::nullopt;
}

const std::string* RequestReader::query(const char* name) const {
    auto it = request_.query.find(name);
    return it == request_.query.end() ? nullptr : &it->second;
}

std::optional<std::string> RequestReader::id(const char* name) {
    const auto* value = query(name);
    if (value == nullptr) {
        errors_.push_back({field(name), "is required"});
        return std::nullopt;
    }
    if (domain::is_valid_id(*value)) return *value;
    errors_.push_back({field(name), "must be 1 to 64 characters of [A-Za-z0-9._-]"});
    return std::nullopt;
}

std::optional<std::string> RequestReader::one_of(const char* name,
                                                 std::initializer_list<std::string_view> allowed,
                                                 const char* message) {
    const auto* value = query(name);
    if (value == nullptr) return std::nullopt;
    if (std::find(allowed.begin(), allowed.end(), *value) != allowed.end()) return *value;
    errors_.push_back({field(name), message});
    return std::nullopt;
}

std::int64_t RequestReader::integer(const char* name, std::int64_t min, std::int64_t max,
                                    std::int64_t fallback) {
    const auto* value = query(name);
    if (value == nullptr) return fallback;
    auto number = parse_count(*value);
    if (!number || *number < min || *number > max) {
        errors_.push_back({field(name), "must be an integer from " + std::to_string(min) + " to " +
                                            std::to_string(max)});
        return fallback;
    }
    return *number;
}

Consistency RequestReader::consistency() {
    Consistency out;
    if (const auto* value = query("wait_ms")) {
        auto number = parse_count(*value);
        if (!number) {
            errors_.push_back({field("wait_ms"), "must be a whole number of milliseconds"});
        } else {
            out.wait = std::chrono::milliseconds{std::min<std::int64_t>(*number, kMaxWait.count())};
        }
    }
    if (auto header = request_.header("x-consistency-token")) {
        out.token = eventstore::ShardToken::parse(*header);
        if (!out.token) {
            errors_.push_back(
                {"X-Consistency-Token", "must be a position returned by the command API"});
        }
    }
    return out;
}

void RequestReader::only(std::initializer_list<std::string_view> known) {
    for (const auto& [name, value] : request_.query) {
        if (std::find(known.begin(), known.end(), name) == known.end()) {
            errors_.push_back({field(name.c_str()), "is not a known parameter"});
        }
    }
}

std::vector<std::string> RequestReader::id_list(const char* name, std::size_t max) {
    std::vector<std::string> out;
    const auto* value = query(name);
    if (value == nullptr) return out;
    std::string_view rest{*value};
    while (true) {
        auto comma = rest.find(',');
        std::string item{rest.substr(0, comma)};
        if (!domain::is_valid_id(item)) {
            errors_.push_back({field(name),
                               "must be a comma-separated list of names of 1 to 64 "
                               "characters of [A-Za-z0-9._-]"});
            return {};
        }
        if (std::find(out.begin(), out.end(), item) == out.end()) out.push_back(std::move(item));
        if (out.size() > max) {
            errors_.push_back({field(name), "may name at most " + std::to_string(max)});
            return {};
        }
        if (comma == std::string_view::npos) break;
        rest.remove_prefix(comma + 1);
    }
    return out;
}

std::optional<FeedPosition> RequestReader::feed_position(const char* name,
                                                         const FeedPosition& start) {
    const auto* value = query(name);
    if (value == nullptr) return std::nullopt;
    auto position = FeedPosition::parse(*value, start.shards());
    if (!position) errors_.push_back({field(name), "must be a position returned by this API"});
    return position;
}

}  // namespace ordo::query
