// The API's bearer tokens: the token file's format, its parsing into a TokenSet, the
// constant-time check of an Authorization header, and the making of new tokens.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "platform/http/http.hpp"

// The API's bearer tokens as a server knows them: a name, its scopes and the SHA-256 of the
// token, never the token itself, so that the file configuring a server is not a secret
// worth stealing and a leaked log or core dump holds no token.
//
// The token file (ORDO_API_TOKENS_FILE) has one entry per line; '#' starts a comment, blank
// lines are ignored:
//
//     <name> <scope>[,<scope>…] <SHA-256 of the token, 64 hex digits>
//     ci-loader commands 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
//
// Names are ids ([A-Za-z0-9._-]{1,64}; not `anonymous` or `saga`, which Ordo writes itself):
// the name is the `actor` of the events a caller's commands append and the scope of its
// Idempotency-Keys. Scopes are `commands`, `read` and `admin`. A name may have several
// lines, with the same scopes, so that a new token can be added before the old one goes
// (rotation); two lines may not share a hash (one token, two names).
namespace ordo::platform::http {

using Sha256 = std::array<unsigned char, 32>;
Sha256 sha256(std::string_view data);
std::string to_hex(const Sha256& digest);

// "commands,read" → the Access bits; nullopt for an empty list or an unknown scope.
std::optional<std::uint8_t> parse_scopes(std::string_view list);
// The scopes' names, comma-separated, in the order commands, read, admin.
std::string scope_names(std::uint8_t scopes);

// A line of a token file that cannot be read. `line` counts from 1.
struct TokenFileError : std::runtime_error {
    TokenFileError(std::size_t line, const std::string& what);
    std::size_t line;
};

class TokenSet {
   public:
    struct Entry {
        std::string name;
        std::uint8_t scopes = 0;
        Sha256 digest{};
    };

    TokenSet() = default;
    // Throws TokenFileError for the first bad line.
    static TokenSet parse(std::string_view text);

    bool empty() const { return entries_.empty(); }
    const std::vector<Entry>& entries() const { return entries_; }

    // The caller an Authorization header names: "Bearer <token>", the scheme in any case,
    // spaces around the token ignored. nullopt without a header, with another scheme or an
    // unknown token. The presented token is hashed and every entry compared in constant
    // time, so the time taken tells nothing about the tokens.
    std::optional<Caller> authenticate(std::optional<std::string_view> authorization) const;

   private:
    std::vector<Entry> entries_;
};

// A fresh token for `name` with `scopes`: 32 random bytes from the operating system's
// generator, as "ordo_" and 43 base64url characters. `line` is its entry for the token file.
struct NewToken {
    std::string token;
    std::string line;
};
NewToken new_token(const std::string& name, std::uint8_t scopes);

}  // namespace ordo::platform::http
