// Standard Webhooks signatures: base64, the whsec_ secrets text, HMAC-SHA256 signing.

#include "projections/webhook_signature.hpp"

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "platform/core/errors.hpp"

namespace ordo::projections::webhook_signature {
namespace {

constexpr std::string_view kPrefix = "whsec_";
constexpr std::size_t kMinKeyBytes = 24;
constexpr std::size_t kMaxKeyBytes = 64;

bool is_base64_char(char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\r')) {
        s.remove_prefix(1);
    }
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r')) {
        s.remove_suffix(1);
    }
    return s;
}

}  // namespace

std::string base64_encode(std::string_view bytes) {
    std::string out(4 * ((bytes.size() + 2) / 3), '\0');
    const int n = EVP_EncodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(bytes.data()),
                                  static_cast<int>(bytes.size()));
    out.resize(static_cast<std::size_t>(n));
    return out;
}

bool base64_decode(std::string_view text, std::string& out) {
    if (text.empty() || text.size() % 4 != 0) return false;
    std::size_t padding = 0;
    if (text.back() == '=') ++padding;
    if (text.size() >= 2 && text[text.size() - 2] == '=') ++padding;
    for (std::size_t i = 0; i < text.size() - padding; ++i) {
        if (!is_base64_char(text[i])) return false;
    }
    out.assign(text.size() / 4 * 3, '\0');
    const int n = EVP_DecodeBlock(reinterpret_cast<unsigned char*>(out.data()),
                                  reinterpret_cast<const unsigned char*>(text.data()),
                                  static_cast<int>(text.size()));
    if (n < 0) return false;
    out.resize(static_cast<std::size_t>(n) - padding);  // EVP_DecodeBlock counts padding as zeros
    return true;
}

std::vector<std::string> parse_secrets(std::string_view text) {
    std::vector<std::string> keys;
    std::size_t line_number = 0;
    while (!text.empty()) {
        ++line_number;
        const auto end = text.find('\n');
        std::string_view line = trim(text.substr(0, end));
        text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 1);
        if (line.empty() || line.front() == '#') continue;
        const std::string where = "webhook secret, line " + std::to_string(line_number);
        if (line.substr(0, kPrefix.size()) != kPrefix) {
            throw platform::InvalidInput(where + ": a secret is written whsec_<base64>");
        }
        std::string key;
        if (!base64_decode(line.substr(kPrefix.size()), key)) {
            throw platform::InvalidInput(where + ": what follows whsec_ is not base64");
        }
        if (key.size() < kMinKeyBytes || key.size() > kMaxKeyBytes) {
            throw platform::InvalidInput(where + ": the key must be 24 to 64 bytes, not " +
                                         std::to_string(key.size()));
        }
        keys.push_back(std::move(key));
    }
    if (keys.empty()) throw platform::InvalidInput("no webhook secret (whsec_…) given");
    return keys;
}

std::string sign(std::string_view key, std::string_view id, std::int64_t timestamp,
                 std::string_view body) {
    std::string content;
    const std::string ts = std::to_string(timestamp);
    content.reserve(id.size() + ts.size() + body.size() + 2);
    content.append(id).append(".").append(ts).append(".").append(body);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int length = 0;
    if (!HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
              reinterpret_cast<const unsigned char*>(content.data()), content.size(), mac,
              &length)) {
        throw std::runtime_error("HMAC-SHA256 failed");
    }
    return "v1," + base64_encode({reinterpret_cast<const char*>(mac), length});
}

std::string signature_header(const std::vector<std::string>& keys, std::string_view id,
                             std::int64_t timestamp, std::string_view body) {
    std::string out;
    for (const auto& key : keys) {
        if (!out.empty()) out += ' ';
        out += sign(key, id, timestamp, body);
    }
    return out;
}

}  // namespace ordo::projections::webhook_signature
