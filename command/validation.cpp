#include "command/validation.hpp"

#include <algorithm>

#include "domain/ids.hpp"

namespace ordo::command {

std::optional<nlohmann::json> parse_body(std::string_view body, std::string& error) {
    constexpr int kMaxDepth = 32;
    try {
        nlohmann::json::parser_callback_t limit_depth = [](int depth, nlohmann::json::parse_event_t,
                                                           nlohmann::json&) {
            if (depth > kMaxDepth) throw std::invalid_argument("nested deeper than 32 levels");
            return true;
        };
        return nlohmann::json::parse(body, limit_depth);
    } catch (const nlohmann::json::parse_error& e) {
        error = e.what();
    } catch (const std::invalid_argument& e) {
        error = e.what();
    }
    return std::nullopt;
}

bool is_json_content_type(const std::optional<std::string>& content_type) {
    if (!content_type) return false;
    std::string value = content_type->substr(0, content_type->find(';'));
    value.erase(std::remove(value.begin(), value.end(), ' '), value.end());
    std::transform(value.begin(), value.end(), value.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return value == "application/json";
}

FieldReader::FieldReader(const nlohmann::json& object, std::vector<FieldError>& errors,
                         std::string prefix)
    : object_{object}, errors_{errors}, prefix_{std::move(prefix)} {}

std::optional<std::int64_t> FieldReader::integer(const char* name, std::int64_t min,
                                                 std::int64_t max, bool required) {
    auto it = object_.find(name);
    auto range = "must be an integer from " + std::to_string(min) + " to " + std::to_string(max);
    if (it == object_.end() || it->is_null()) {
        if (required) errors_.push_back({field(name), "is required; " + range});
        return std::nullopt;
    }
    if (it->is_number_unsigned()) {
        auto v = it->get<std::uint64_t>();
        if (v <= static_cast<std::uint64_t>(max) && static_cast<std::int64_t>(v) >= min) {
            return static_cast<std::int64_t>(v);
        }
    } else if (it->is_number_integer()) {
        auto v = it->get<std::int64_t>();
        if (v >= min && v <= max) return v;
    }
    errors_.push_back({field(name), range});
    return std::nullopt;
}

std::optional<std::string> FieldReader::id(const char* name, bool required) {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) {
        if (required) errors_.push_back({field(name), "is required"});
        return std::nullopt;
    }
    if (!it->is_string() || !domain::is_valid_id(it->get_ref<const std::string&>())) {
        errors_.push_back({field(name), "must be 1 to 64 characters of [A-Za-z0-9._-]"});
        return std::nullopt;
    }
    return it->get<std::string>();
}

std::optional<std::string> FieldReader::text(const char* name, std::size_t max_length,
                                             bool required) {
    auto it = object_.find(name);
    if (it == object_.end() || it->is_null()) {
        if (required) errors_.push_back({field(name), "is required"});
        return std::nullopt;
    }
    if (!it->is_string() || it->get_ref<const std::string&>().size() > max_length) {
        errors_.push_back(
            {field(name), "must be a string of at most " + std::to_string(max_length) + " bytes"});
        return std::nullopt;
    }
    // PostgreSQL's jsonb cannot hold U+0000, and no control character belongs in free text.
    const auto& value = it->get_ref<const std::string&>();
    if (std::any_of(value.begin(), value.end(),
                    [](char c) { return static_cast<unsigned char>(c) < 0x20 && c != '\t'; })) {
        errors_.push_back({field(name), "must not contain control characters"});
        return std::nullopt;
    }
    return it->get<std::string>();
}

const nlohmann::json* FieldReader::array(const char* name) {
    auto it = object_.find(name);
    if (it == object_.end() || !it->is_array()) {
        errors_.push_back({field(name), "must be an array"});
        return nullptr;
    }
    return &*it;
}

void FieldReader::only(std::initializer_list<std::string_view> known) {
    for (const auto& [key, value] : object_.items()) {
        if (std::find(known.begin(), known.end(), key) == known.end()) {
            errors_.push_back({field(key.c_str()), "is not a known field"});
        }
    }
}

bool is_valid_idempotency_key(std::string_view key) {
    return !key.empty() && key.size() <= 255 &&
           std::all_of(key.begin(), key.end(), [](char c) { return c > 0x20 && c < 0x7f; });
}

}  // namespace ordo::command
