// How a client reaches NATS (URLs, TLS, passwords kept out of logs), and the plain
// reconnecting NATS connection whose state the readiness check reads.
#pragma once

#include <memory>
#include <string>

#include "platform/core/log.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::platform::nats {

// How a client reaches NATS, for every NATS adapter alike. `url` is one or more
// comma-separated `nats://` or `tls://` URLs and may carry the client's `user:password@`.
// TLS is required when a URL says `tls://` or a CA file is given; the server's certificate
// must then chain to `ca_file` (or the system's trust store) and name the first URL's host,
// so a server that cannot prove it is that host is never sent the password.
struct ClientSettings {
    std::string url;
    std::string ca_file;  // PEM; ORDO_NATS_CA_FILE
};

// `url` without the password of any `user:password@`, for logs and errors.
std::string redacted(const std::string& url);

// A NATS connection that reconnects by itself, forever. Cheap to query for readiness.
class Connection {
   public:
    // Counts ordo_nats_reconnects_total{connection="nats"} in `metrics` when given. Throws
    // std::invalid_argument for settings that can never work (an unreadable CA file).
    Connection(const ClientSettings& settings, Logger log, metrics::Registry* metrics = nullptr);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool connected() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::platform::nats
