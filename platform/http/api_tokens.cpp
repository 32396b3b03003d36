// Token files read line by line (name, scopes, SHA-256 in hex), bearer tokens checked against
// every entry in constant time, and new tokens drawn from the operating system's generator.
#include "platform/http/api_tokens.hpp"

#include <openssl/evp.h>
#include <sys/random.h>

#include <cerrno>
#include <cstring>

namespace ordo::platform::http {
namespace {

constexpr std::pair<std::string_view, Access> kScopes[] = {{"commands", Access::commands},
                                                           {"read", Access::read},
                                                           {"admin", Access::admin},
                                                           {"telemetry", Access::telemetry}};

// Names Ordo itself writes as an actor or a caller; a token may not pass for them.
constexpr std::string_view kReservedNames[] = {"anonymous", "saga"};

bool is_name(std::string_view s) {
    if (s.empty() || s.size() > 64 || s == "." || s == "..") return false;
    for (auto reserved : kReservedNames) {
        if (s == reserved) return false;
    }
    for (char c : s) {
        bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

int hex_value(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

std::optional<Sha256> parse_hex(std::string_view hex) {
    Sha256 out{};
    if (hex.size() != out.size() * 2) return std::nullopt;
    for (std::size_t i = 0; i < out.size(); ++i) {
        int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
        if (hi < 0 || lo < 0) return std::nullopt;
        out[i] = static_cast<unsigned char>(hi * 16 + lo);
    }
    return out;
}

constexpr std::string_view kNameRule =
    "a name is 1 to 64 of A-Z a-z 0-9 . _ - (not . or .., anonymous or saga)";

bool is_blank(char c) {
    return c == ' ' || c == '\t' || c == '\r';
}

std::vector<std::string_view> fields_of(std::string_view line) {
    std::vector<std::string_view> fields;
    std::size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && is_blank(line[i])) ++i;
        std::size_t start = i;
        while (i < line.size() && !is_blank(line[i])) ++i;
        if (i > start) fields.push_back(line.substr(start, i - start));
    }
    return fields;
}

bool equal_digests(const Sha256& a, const Sha256& b) {
    unsigned char diff = 0;
    for (std::size_t i = 0; i < a.size(); ++i) diff |= static_cast<unsigned char>(a[i] ^ b[i]);
    return diff == 0;
}

}  // namespace

Sha256 sha256(std::string_view data) {
    Sha256 out{};
    unsigned int size = 0;
    if (EVP_Digest(data.data(), data.size(), out.data(), &size, EVP_sha256(), nullptr) != 1 ||
        size != out.size()) {
        throw std::runtime_error("SHA-256 failed");
    }
    return out;
}

std::string to_hex(const Sha256& digest) {
    static constexpr char kDigits[] = "0123456789abcdef";
    std::string out;
    out.reserve(digest.size() * 2);
    for (unsigned char b : digest) {
        out += kDigits[b >> 4];
        out += kDigits[b & 15];
    }
    return out;
}

std::optional<std::uint8_t> parse_scopes(std::string_view list) {
    std::uint8_t scopes = 0;
    std::size_t start = 0;
    while (true) {
        auto comma = list.find(',', start);
        auto name = list.substr(start, comma == std::string_view::npos ? list.npos : comma - start);
        bool known = false;
        for (const auto& [scope_name, access] : kScopes) {
            if (name == scope_name) {
                scopes |= static_cast<std::uint8_t>(access);
                known = true;
            }
        }
        if (!known) return std::nullopt;
        if (comma == std::string_view::npos) break;
        start = comma + 1;
    }
    return scopes;
}

std::string scope_names(std::uint8_t scopes) {
    std::string out;
    for (const auto& [name, access] : kScopes) {
        if (scopes & static_cast<std::uint8_t>(access)) {
            if (!out.empty()) out += ',';
            out += name;
        }
    }
    return out;
}

TokenFileError::TokenFileError(std::size_t line_number, const std::string& what)
    : std::runtime_error("line " + std::to_string(line_number) + ": " + what), line(line_number) {}

TokenSet TokenSet::parse(std::string_view text) {
    TokenSet set;
    std::size_t number = 0, start = 0;
    while (start < text.size()) {
        auto end = text.find('\n', start);
        if (end == std::string_view::npos) end = text.size();
        std::string_view line = text.substr(start, end - start);
        start = end + 1;
        ++number;
        if (auto hash = line.find('#'); hash != std::string_view::npos) line = line.substr(0, hash);
        auto fields = fields_of(line);
        if (fields.empty()) continue;
        if (fields.size() != 3) {
            throw TokenFileError(number,
                                 "expected three fields: name, scopes, SHA-256 of the token");
        }
        if (!is_name(fields[0])) {
            throw TokenFileError(number, std::string(kNameRule));
        }
        auto scopes = parse_scopes(fields[1]);
        if (!scopes) {
            throw TokenFileError(
                number, "scopes are a comma-separated list of commands, read, admin, telemetry");
        }
        auto digest = parse_hex(fields[2]);
        if (!digest) {
            throw TokenFileError(number,
                                 "the third field is the token's SHA-256 as 64 hex digits, "
                                 "not the token");
        }
        for (const auto& e : set.entries_) {
            if (e.digest == *digest) {
                throw TokenFileError(number, "the same token as " + e.name);
            }
            // One name may hold two tokens while one replaces the other; both are the same
            // caller, so they must be allowed the same.
            if (e.name == fields[0] && e.scopes != *scopes) {
                throw TokenFileError(number, "the name " + e.name +
                                                 " has other scopes on an earlier line; a "
                                                 "name's tokens share its scopes");
            }
        }
        set.entries_.push_back(Entry{std::string(fields[0]), *scopes, *digest});
    }
    return set;
}

std::optional<Caller> TokenSet::authenticate(std::optional<std::string_view> authorization) const {
    if (!authorization || entries_.empty()) return std::nullopt;
    std::string_view value = *authorization;
    constexpr std::string_view scheme = "bearer ";
    if (value.size() < scheme.size()) return std::nullopt;
    for (std::size_t i = 0; i < scheme.size(); ++i) {
        char c = value[i];
        if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
        if (c != scheme[i]) return std::nullopt;
    }
    value.remove_prefix(scheme.size());
    while (!value.empty() && value.front() == ' ') value.remove_prefix(1);
    while (!value.empty() && value.back() == ' ') value.remove_suffix(1);
    if (value.empty()) return std::nullopt;
    const Sha256 presented = sha256(value);
    const Entry* found = nullptr;
    // Every entry is compared, so the time taken does not tell which one matched.
    for (const auto& e : entries_) {
        if (equal_digests(e.digest, presented)) found = &e;
    }
    if (!found) return std::nullopt;
    return Caller{found->name, found->scopes};
}

NewToken new_token(const std::string& name, std::uint8_t scopes) {
    if (!is_name(name)) {
        throw std::invalid_argument("a token name " + std::string(kNameRule.substr(7)));
    }
    if (scopes == 0) throw std::invalid_argument("a token needs at least one scope");
    unsigned char bytes[32];
    std::size_t got = 0;
    while (got < sizeof bytes) {
        ssize_t n = getrandom(bytes + got, sizeof bytes - got, 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            throw std::runtime_error(std::string("no random bytes: ") + std::strerror(errno));
        }
        got += static_cast<std::size_t>(n);
    }
    static constexpr char kAlphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    std::string token = "ordo_";
    std::uint32_t acc = 0;
    int bits = 0;
    for (unsigned char b : bytes) {
        acc = (acc << 8) | b;
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            token += kAlphabet[(acc >> bits) & 63];
        }
    }
    if (bits > 0) token += kAlphabet[(acc << (6 - bits)) & 63];
    return NewToken{token, name + " " + scope_names(scopes) + " " + to_hex(sha256(token))};
}

}  // namespace ordo::platform::http
