// The services' outgoing HTTP client: one POST per call on a fresh connection, http:// or
// verified https://, the whole exchange bounded by one timeout.
#pragma once

#include <chrono>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

// A small blocking HTTP/1.1 client for calls out of the services (webhooks, span export), over
// http:// or https://. No Beast, Asio or OpenSSL here: they live in the .cpp.
namespace ordo::platform::http_client {

struct Response {
    int status = 0;
    std::string body;
};

// Largest response body read; a longer one is an error (the peer is not what we expect).
inline constexpr std::size_t kMaxResponseBytes = 4 << 20;

// The server's certificate did not verify: not issued by a trusted CA, expired, or for
// another host name. Permanent: retrying cannot help until the configuration (the URL, the
// trusted CAs or the server's certificate) changes. Deliberately not platform::Unavailable.
class Untrusted : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

struct ClientOptions {
    // PEM file of the CA certificates that https:// servers are verified against, instead of
    // the system's trust store. Empty: the system's store.
    std::string ca_file;
};

// Sends one request per call, on a fresh connection that is closed afterwards. For https://
// the server's certificate chain is verified against the trusted CAs and its name against the
// URL's host (DNS name or IP address; the name is also sent as SNI); TLS 1.2 at the least.
// Thread-safe: calls share only the immutable TLS context.
class Client {
   public:
    // Throws platform::InvalidInput when the CA file cannot be loaded.
    explicit Client(ClientOptions options = {});
    ~Client();
    Client(const Client&) = default;
    Client& operator=(const Client&) = default;

    // Throws platform::InvalidInput for a URL or header that cannot be sent; Untrusted when
    // the server's certificate does not verify; platform::Unavailable when the server cannot
    // be reached, breaks the exchange (TLS handshake included), or does not answer within
    // `timeout` (which bounds the whole exchange: resolving, connecting, the handshake,
    // sending and reading). Any status is returned as is.
    Response post(const std::string& url,
                  const std::vector<std::pair<std::string, std::string>>& headers,
                  const std::string& body, std::chrono::milliseconds timeout) const;

   private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace ordo::platform::http_client
