#pragma once

// How webhook deliveries are signed.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

// Webhook signatures in the Standard Webhooks scheme (standardwebhooks.com), so that a
// receiver can check with any of that scheme's libraries that a delivery came from Ordo and
// was not altered or replayed late:
//
//     webhook-id:        the delivery's id, the same on every retry of it (for deduplication)
//     webhook-timestamp: Unix seconds of this attempt (receivers refuse old ones)
//     webhook-signature: v1,<base64(HMAC-SHA256(key, id "." timestamp "." body))>
//
// A secret is written `whsec_<base64 of the key bytes>`. Several secrets sign with each, the
// signatures separated by spaces: that is how a secret is rotated without a gap. Pure logic:
// no IO, no clock.
namespace ordo::projections::webhook_signature {

// Decoded keys of a secrets text: one `whsec_…` per line, '#' comments and blank lines
// ignored. Throws platform::InvalidInput naming the line for anything else, a key shorter
// than 24 bytes (192 bits) or longer than 64, and for a text without any secret.
std::vector<std::string> parse_secrets(std::string_view text);

// "v1,<base64>" for one key.
std::string sign(std::string_view key, std::string_view id, std::int64_t timestamp,
                 std::string_view body);

// The webhook-signature header's value: sign() for each key, space-separated.
std::string signature_header(const std::vector<std::string>& keys, std::string_view id,
                             std::int64_t timestamp, std::string_view body);

// Standard base64 with padding (RFC 4648 §4); decode returns false for anything else.
std::string base64_encode(std::string_view bytes);
bool base64_decode(std::string_view text, std::string& out);

}  // namespace ordo::projections::webhook_signature
