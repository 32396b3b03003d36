// Token sets for tests, built from (name, scopes, token) entries, and bearer headers.
#pragma once

#include <memory>
#include <string>
#include <tuple>
#include <vector>

#include "platform/http/api_tokens.hpp"
#include "tests/support/http_client.hpp"

namespace ordo::testing {

// A token set as a server would load it from a file: (name, scopes, token) per entry.
inline std::shared_ptr<const platform::http::TokenSet> token_set(
    const std::vector<std::tuple<std::string, std::string, std::string>>& entries) {
    std::string text;
    for (const auto& [name, scopes, token] : entries) {
        text += name + " " + scopes + " " + platform::http::to_hex(platform::http::sha256(token)) +
                "\n";
    }
    return std::make_shared<const platform::http::TokenSet>(platform::http::TokenSet::parse(text));
}

inline HttpHeaders bearer(const std::string& token) {
    return {{"Authorization", "Bearer " + token}};
}

}  // namespace ordo::testing
