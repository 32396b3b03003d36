// The test CA through the openssl command, and the TLS client, one-shot HTTPS request and
// response parser on OpenSSL.
#include "tests/support/tls.hpp"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <iterator>
#include <stdexcept>

#include <boost/beast/http.hpp>

#include "tests/support/process.hpp"

namespace ordo::testing {
namespace {

namespace fs = std::filesystem;
namespace bhttp = boost::beast::http;

void write_text(const fs::path& path, const std::string& text) {
    std::ofstream out{path, std::ios::trunc};
    out << text;
    if (!out) throw std::runtime_error("cannot write " + path.string());
}

// Runs the openssl command with its chatter in `log`, which a failure reports.
void openssl(const std::vector<std::string>& args, const fs::path& log) {
    std::vector<std::string> argv{"/bin/sh", "-c", "exec /usr/bin/openssl \"$@\" >>\"$0\" 2>&1",
                                  log.string()};
    argv.insert(argv.end(), args.begin(), args.end());
    if (run(argv) != 0) {
        std::string line;
        for (const auto& a : args) line += a + " ";
        std::ifstream in{log};
        std::string output{std::istreambuf_iterator<char>{in}, {}};
        throw std::runtime_error("openssl " + line + "failed: " + output);
    }
}

std::string errors() {
    std::string out;
    while (unsigned long code = ERR_get_error()) {
        char buf[256];
        ERR_error_string_n(code, buf, sizeof buf);
        if (!out.empty()) out += "; ";
        out += buf;
    }
    return out;
}

std::string serial_hex(X509* cert) {
    BIGNUM* bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr);
    if (!bn) return {};
    char* hex = BN_bn2hex(bn);
    std::string out = hex ? hex : "";
    OPENSSL_free(hex);
    BN_free(bn);
    return out;
}

}  // namespace

TestPki::TestPki() {
    std::string pattern = (fs::temp_directory_path() / "ordo-pki-XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
    dir_ = pattern;
    ca_file_ = (dir_ / "ca.crt").string();
    ca_key_ = (dir_ / "ca.key").string();
    write_text(dir_ / "ca.cnf",
               "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = Ordo test CA\n"
               "[ca_ext]\nbasicConstraints = critical,CA:true\n"
               "keyUsage = critical,keyCertSign,cRLSign\nsubjectKeyIdentifier = hash\n");
    openssl({"req", "-x509", "-config", (dir_ / "ca.cnf").string(), "-extensions", "ca_ext",
             "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-keyout",
             ca_key_, "-out", ca_file_, "-days", "2"},
            dir_ / "openssl.log");
}

TestPki::~TestPki() {
    std::error_code ignored;
    fs::remove_all(dir_, ignored);
}

TestPki::Issued TestPki::issue(const std::vector<std::string>& names) {
    const std::string base = (dir_ / ("leaf" + std::to_string(++issued_))).string();
    std::string alt;
    for (const auto& n : names) alt += (alt.empty() ? "" : ",") + n;
    write_text(base + ".cnf",
               "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = ordo test server\n"
               "[leaf_ext]\nbasicConstraints = critical,CA:false\n"
               "keyUsage = critical,digitalSignature\nextendedKeyUsage = serverAuth\n"
               "subjectAltName = " +
                   alt + "\n");
    // 16 hex digits, the first 1 to 7: the same text whoever prints it.
    unsigned char random[8];
    if (RAND_bytes(random, sizeof random) != 1) throw std::runtime_error("RAND_bytes failed");
    random[0] = static_cast<unsigned char>((random[0] % 7 + 1) << 4 | (random[0] & 0x0F));
    char serial[17];
    for (int i = 0; i < 8; ++i) std::snprintf(serial + 2 * i, 3, "%02X", random[i]);
    Issued issued{base + ".crt", base + ".key", serial};
    openssl({"req", "-new", "-config", base + ".cnf", "-newkey", "ec", "-pkeyopt",
             "ec_paramgen_curve:prime256v1", "-nodes", "-keyout", issued.key_file, "-out",
             base + ".csr"},
            dir_ / "openssl.log");
    openssl({"x509", "-req", "-in", base + ".csr", "-CA", ca_file_, "-CAkey", ca_key_,
             "-set_serial", std::string("0x") + serial, "-days", "1", "-extfile", base + ".cnf",
             "-extensions", "leaf_ext", "-out", issued.cert_file},
            dir_ / "openssl.log");
    return issued;
}

struct TlsConnection::Impl {
    int fd = -1;
    SSL_CTX* ctx = nullptr;
    SSL* ssl = nullptr;
    ~Impl() {
        if (ssl) SSL_free(ssl);
        if (ctx) SSL_CTX_free(ctx);
        if (fd >= 0) ::close(fd);
    }
};

TlsConnection::TlsConnection(std::uint16_t port, TlsClientOptions options,
                             std::chrono::milliseconds timeout)
    : impl_{std::make_unique<Impl>()} {
    auto& i = *impl_;
    i.fd = ::socket(AF_INET, SOCK_STREAM, 0);
    if (!options.source_address.empty()) {
        sockaddr_in from{};
        from.sin_family = AF_INET;
        ::inet_pton(AF_INET, options.source_address.c_str(), &from.sin_addr);
        if (::bind(i.fd, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0) {
            throw std::runtime_error("cannot bind to " + options.source_address);
        }
    }
    const auto ms = timeout.count();
    timeval tv{static_cast<time_t>(ms / 1000), static_cast<suseconds_t>(ms % 1000 * 1000)};
    ::setsockopt(i.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    ::setsockopt(i.fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(port);
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    if (::connect(i.fd, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
        throw std::runtime_error("cannot connect to port " + std::to_string(port));
    }
    i.ctx = SSL_CTX_new(TLS_client_method());
    // Security level 0, so that this client really offers what it is told to (TLS 1.1
    // included) and the refusal, if any, is the server's.
    SSL_CTX_set_security_level(i.ctx, 0);
    SSL_CTX_set_cipher_list(i.ctx, "DEFAULT:@SECLEVEL=0");
    SSL_CTX_set_min_proto_version(i.ctx, options.min_version);
    SSL_CTX_set_max_proto_version(i.ctx, options.max_version);
    if (!options.ca_file.empty()) {
        if (SSL_CTX_load_verify_locations(i.ctx, options.ca_file.c_str(), nullptr) != 1) {
            throw std::runtime_error("cannot load " + options.ca_file + ": " + errors());
        }
        SSL_CTX_set_verify(i.ctx, SSL_VERIFY_PEER, nullptr);
    }
    i.ssl = SSL_new(i.ctx);
    SSL_set_fd(i.ssl, i.fd);
    if (!options.server_name.empty()) {
        SSL_set_tlsext_host_name(i.ssl, options.server_name.c_str());
        SSL_set1_host(i.ssl, options.server_name.c_str());
    }
}

TlsConnection::~TlsConnection() = default;

bool TlsConnection::handshake() {
    ERR_clear_error();
    if (SSL_connect(impl_->ssl) == 1) return true;
    error_ = errors();
    if (error_.empty()) error_ = "the connection ended in the handshake";
    return false;
}

std::string TlsConnection::protocol() const {
    return SSL_get_version(impl_->ssl);
}

std::string TlsConnection::peer_serial() const {
    X509* cert = SSL_get1_peer_certificate(impl_->ssl);
    if (!cert) return {};
    auto out = serial_hex(cert);
    X509_free(cert);
    return out;
}

std::string TlsConnection::exchange(const std::string& bytes) {
    if (!bytes.empty() &&
        SSL_write(impl_->ssl, bytes.data(), static_cast<int>(bytes.size())) <= 0) {
        return {};
    }
    std::string out;
    char buf[4096];
    for (;;) {
        const auto end = out.find("\r\n\r\n");
        if (end != std::string::npos) {
            auto res = parse_response(out);
            const auto length = res.header("content-length");
            if (!length.empty() && out.size() >= end + 4 + std::stoul(length)) return out;
        }
        const int n = SSL_read(impl_->ssl, buf, sizeof buf);
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

std::string TlsConnection::read_to_end() {
    std::string out;
    char buf[4096];
    for (;;) {
        const int n = SSL_read(impl_->ssl, buf, sizeof buf);
        if (n <= 0) return out;
        out.append(buf, static_cast<std::size_t>(n));
    }
}

HttpResponse parse_response(const std::string& raw) {
    bhttp::response_parser<bhttp::string_body> parser;
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (used < raw.size() && !ec && !parser.is_done()) {
        const auto n = parser.put(boost::asio::buffer(raw.data() + used, raw.size() - used), ec);
        if (n == 0) break;
        used += n;
    }
    if (ec == bhttp::error::need_more) ec = {};
    if (ec || !parser.is_header_done()) return {};
    HttpResponse res;
    const auto& msg = parser.get();
    res.status = static_cast<int>(msg.result_int());
    for (const auto& field : msg) {
        std::string name{field.name_string()};
        for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        res.headers[name] = std::string{field.value()};
    }
    res.body = msg.body();
    return res;
}

HttpResponse https_request(std::uint16_t port, const std::string& ca_file,
                           const std::string& method, const std::string& target,
                           const std::string& body, const HttpHeaders& headers) {
    TlsConnection connection{port, {.ca_file = ca_file, .server_name = "localhost"}};
    if (!connection.handshake()) throw std::runtime_error("TLS handshake: " + connection.error());
    std::string request = method + " " + target + " HTTP/1.1\r\nHost: localhost\r\n";
    for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
    if (!body.empty() || method == "POST") {
        request += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    }
    request += "Connection: close\r\n\r\n" + body;
    return parse_response(connection.exchange(request));
}

}  // namespace ordo::testing
