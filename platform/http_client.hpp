#pragma once

#include <chrono>
#include <string>
#include <utility>
#include <vector>

// A small blocking HTTP/1.1 client for calls out of the services (webhooks, span export).
// No Beast here: it lives in the .cpp.
namespace ordo::platform::http_client {

struct Response {
    int status = 0;
    std::string body;
};

// Largest response body read; a longer one is an error (the peer is not what we expect).
inline constexpr std::size_t kMaxResponseBytes = 4 << 20;

// One HTTP/1.1 request (http:// only) on a fresh connection, closed afterwards. Throws
// platform::InvalidInput for a URL or header that cannot be sent, and platform::Unavailable
// when the server cannot be reached, breaks the exchange, or does not answer within `timeout`
// (which bounds the whole exchange: resolving, connecting, sending and reading). Any status
// is returned as is. Thread-safe: calls share nothing.
Response post(const std::string& url,
              const std::vector<std::pair<std::string, std::string>>& headers,
              const std::string& body, std::chrono::milliseconds timeout);

}  // namespace ordo::platform::http_client
