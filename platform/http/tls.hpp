// The TLS policy every Ordo endpoint shares, the loading of a server's certificate chain and
// key, and a summary of the loaded certificate.
#pragma once

#include <chrono>
#include <string>

// OpenSSL's context type, declared here so that this header stays free of OpenSSL and Asio.
struct ssl_ctx_st;

// The TLS policy every Ordo endpoint shares, server or client, written once: TLS 1.2 at the
// least (1.0 and 1.1 are refused), forward-secret AEAD cipher suites for TLS 1.2, no
// compression, no renegotiation.
namespace ordo::platform::tls {

// Applies the policy to a context. `server`: also the server's cipher preference and the
// TLS 1.2 cipher list (a client keeps OpenSSL's defaults above the protocol floor, so that
// it can reach any modern server). Throws std::runtime_error when OpenSSL refuses.
void apply_policy(ssl_ctx_st* ctx, bool server);

// Loads a server's identity: the PEM certificate chain (leaf first) and its private key,
// and checks that the key belongs to the certificate. Throws std::runtime_error naming the
// file and OpenSSL's reason. An encrypted key is refused rather than prompted for.
void load_identity(ssl_ctx_st* ctx, const std::string& chain_file, const std::string& key_file);

// What a loaded identity is, for logs and the expiry metric.
struct CertificateSummary {
    std::string subject;
    std::string serial;  // hex
    std::chrono::system_clock::time_point not_after;
};
CertificateSummary summary(ssl_ctx_st* ctx);

// OpenSSL's error queue as one line (emptied), or `fallback` when it is empty.
std::string drain_errors(const std::string& fallback = "unknown TLS error");

}  // namespace ordo::platform::tls
