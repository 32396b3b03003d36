// Test TLS: a throwaway certificate authority, and a TLS client that offers chosen protocol
// versions and reports what the server presented.
#pragma once

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "tests/support/http_client.hpp"

// Test TLS: a throwaway certificate authority made with the `openssl` command in a private
// folder (mkdtemp, removed afterwards), and a TLS client on OpenSSL that can be told which
// protocol versions to offer and reports what the server presented. No OpenSSL in this
// header; it lives in the .cpp.
namespace ordo::testing {

class TestPki {
   public:
    struct Issued {
        std::string cert_file;  // PEM, the leaf alone
        std::string key_file;   // PEM, unencrypted, mode 0600
        std::string serial;     // upper-case hex, 16 digits
    };

    // A new CA (its own key, in the private folder).
    TestPki();
    ~TestPki();
    TestPki(const TestPki&) = delete;
    TestPki& operator=(const TestPki&) = delete;

    const std::string& ca_file() const { return ca_file_; }
    const std::filesystem::path& dir() const { return dir_; }

    // A server certificate signed by this CA, valid a day, for `names` (subjectAltName
    // entries: "DNS:localhost", "IP:127.0.0.1").
    Issued issue(const std::vector<std::string>& names = {"DNS:localhost", "IP:127.0.0.1"});

   private:
    std::filesystem::path dir_;
    std::string ca_file_;
    std::string ca_key_;
    int issued_ = 0;
};

// OpenSSL's protocol numbers, so that tests need no OpenSSL header.
inline constexpr int kTls11 = 0x0302;
inline constexpr int kTls12 = 0x0303;
inline constexpr int kTls13 = 0x0304;

struct TlsClientOptions {
    std::string ca_file;      // verify the server against it; empty: no verification
    std::string server_name;  // SNI and the name verified; empty: none
    int min_version = kTls12;
    int max_version = 0;         // 0: the highest OpenSSL knows
    std::string source_address;  // bind to this local address (127.x.y.z); empty: any
};

// One TLS connection to 127.0.0.1:`port`, blocking with every read and write bounded by the
// timeout.
class TlsConnection {
   public:
    TlsConnection(std::uint16_t port, TlsClientOptions options,
                  std::chrono::milliseconds timeout = std::chrono::seconds(20));
    ~TlsConnection();
    TlsConnection(const TlsConnection&) = delete;
    TlsConnection& operator=(const TlsConnection&) = delete;

    // The handshake: true when done; otherwise error() says why.
    bool handshake();
    const std::string& error() const { return error_; }
    std::string protocol() const;     // "TLSv1.3"
    std::string peer_serial() const;  // the server certificate's, upper-case hex

    // Sends `bytes` and reads one response (status line, headers and a Content-Length body),
    // or up to the close when the response cannot be delimited.
    std::string exchange(const std::string& bytes);
    // Reads until the server closes (or the timeout); what came.
    std::string read_to_end();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
    std::string error_;
};

// One HTTPS request on a fresh connection verified against `ca_file`, as "localhost".
HttpResponse https_request(std::uint16_t port, const std::string& ca_file,
                           const std::string& method, const std::string& target,
                           const std::string& body = {}, const HttpHeaders& headers = {});

// The parts of an HTTP/1.1 response in `raw`; status 0 when it does not parse.
HttpResponse parse_response(const std::string& raw);

}  // namespace ordo::testing
