#pragma once

#include <cstdint>
#include <initializer_list>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/http.hpp"

// Request validation for the command API. Every problem is collected with the field it
// concerns, so a client learns everything that is wrong in one round trip.
namespace ordo::command {

using platform::http::FieldError;

// Parses a JSON body no deeper than 32 levels; nullopt (and `error`) when it is not JSON.
std::optional<nlohmann::json> parse_body(std::string_view body, std::string& error);

// Whether the Content-Type is application/json (parameters such as charset allowed).
bool is_json_content_type(const std::optional<std::string>& content_type);

class FieldReader {
   public:
    FieldReader(const nlohmann::json& object, std::vector<FieldError>& errors,
                std::string prefix = {});

    std::optional<std::int64_t> integer(const char* name, std::int64_t min, std::int64_t max,
                                        bool required = true);
    std::optional<std::string> id(const char* name, bool required = true);
    std::optional<std::string> text(const char* name, std::size_t max_length, bool required = true);
    const nlohmann::json* array(const char* name);
    // Unknown fields are rejected, so a misspelt optional field cannot pass unnoticed.
    void only(std::initializer_list<std::string_view> known);

   private:
    std::string field(const char* name) const { return prefix_ + name; }
    const nlohmann::json& object_;
    std::vector<FieldError>& errors_;
    std::string prefix_;
};

// 1 to 255 visible ASCII characters.
bool is_valid_idempotency_key(std::string_view key);

}  // namespace ordo::command
