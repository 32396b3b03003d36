// The HTTP/1.1 server every Ordo service runs, plain or TLS: its options and limits, so that
// handlers, on a bounded worker pool, only ever see a complete, authorised request.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/api_tokens.hpp"
#include "platform/http/http.hpp"

namespace ordo::platform::otlp {
class Exporter;
}

namespace ordo::platform::http {

// HTTPS: PEM files of the server's certificate chain (leaf first) and its private key. Both or
// neither; neither serves plain HTTP.
struct TlsFiles {
    std::string certificate_chain_file;
    std::string private_key_file;
    bool enabled() const { return !certificate_chain_file.empty() || !private_key_file.empty(); }
};

struct ServerOptions {
    std::string address = "127.0.0.1";
    std::uint16_t port = 0;  // 0 picks an ephemeral port; port() reports it
    std::size_t io_threads = 2;
    std::size_t worker_threads = 8;
    std::size_t max_queued = 256;  // requests waiting for a worker beyond the idle ones
    std::size_t max_body_bytes = 1 << 20;
    std::size_t max_header_bytes = 16 * 1024;
    std::chrono::milliseconds read_timeout{10'000};  // whole request, from its first byte
    std::chrono::milliseconds idle_timeout{60'000};  // keep-alive wait for the next request
    std::size_t max_connections = 1024;
    std::size_t max_connections_per_client = 256;  // from one client address
    // Null or empty: no authentication, every caller is "anonymous" and may use every route.
    // Otherwise each route's access (Router::add) is checked against the token's scopes.
    std::shared_ptr<const TokenSet> tokens;
    std::string component = "http";
    // When enabled, every connection is TLS (1.2 or 1.3, see platform/http/tls.hpp), its handshake
    // bounded by read_timeout; every limit above applies to it as to plain HTTP.
    TlsFiles tls;
    // When set, every request becomes a SERVER span named "{method} {route}" with the
    // semantic-convention attributes. Must outlive the server.
    otlp::Exporter* spans = nullptr;
};

// An HTTP/1.1 server. Connections are served asynchronously on `io_threads`; handlers run on
// a bounded pool of `worker_threads`, so a slow handler never stalls reading or writing, and
// a full queue answers 503 at once instead of growing without bound. Limits, timeouts,
// authentication, tracing and the error documents for all of them are handled here, so that
// a handler only ever sees a complete, authorised request.
//
// Handlers are called concurrently from the worker threads and must be thread-safe. The
// Registry must outlive the server.
class Server {
   public:
    Server(ServerOptions options, Router router, Logger logger, metrics::Registry& registry);
    ~Server();  // calls stop()
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Loads the TLS identity (when configured), binds, listens and starts the threads. Throws
    // std::runtime_error naming the file when the certificate or key do not load, or the
    // address when it cannot bind. Call once.
    void start();
    std::uint16_t port() const;
    bool tls() const;

    // Reads the certificate chain and key files again; connections accepted from then on use
    // them, those already open keep theirs. Throws std::runtime_error (and changes nothing)
    // when they do not load or do not match, or when the server does not serve TLS. Safe from
    // any thread while the server runs.
    void reload_tls();

    // Replaces the tokens for requests that arrive from now on (token rotation), and ends the
    // streamed responses open now, so that their clients reconnect through the new tokens (a
    // revoked one is refused then). Safe from any thread while the server runs. Whether tokens are
    // required is fixed when the server is built: this throws for a server built without tokens,
    // and for a null or empty set.
    void set_tokens(std::shared_ptr<const TokenSet> tokens);

    // Stops accepting, lets requests in flight finish and their responses be written (with
    // "Connection: close"), closes idle keep-alive connections and joins every thread.
    // Connections still busy after `drain` are cut. Returns only once every handler has
    // returned. Idempotent; safe to call without start().
    void stop(std::chrono::milliseconds drain = std::chrono::seconds(10));

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::platform::http
