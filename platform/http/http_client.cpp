// The outgoing client on Beast and OpenSSL: URL parsing, then one deadline over resolving,
// connecting, the TLS handshake (SNI, chain and host name checked), writing and reading.
#include "platform/http/http_client.hpp"

#include <arpa/inet.h>
#include <openssl/ssl.h>
#include <openssl/x509_vfy.h>

#include <optional>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>
#include <boost/url/parse.hpp>

#include "platform/core/errors.hpp"
#include "platform/http/tls.hpp"

namespace ordo::platform::http_client {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
namespace ssl = boost::asio::ssl;
using tcp = net::ip::tcp;

constexpr std::size_t kMaxUrlBytes = 8 * 1024;
constexpr std::uint32_t kMaxResponseHeaderBytes = 64 * 1024;

struct Endpoint {
    bool https = false;
    std::string host;  // without brackets for IPv6 literals
    std::string port;
    std::string host_header;
    std::string target;
};

Endpoint parse_url(const std::string& url) {
    if (url.size() > kMaxUrlBytes) {
        throw InvalidInput("URL longer than " + std::to_string(kMaxUrlBytes) + " bytes");
    }
    auto parsed = boost::urls::parse_absolute_uri(url);
    if (!parsed) throw InvalidInput("invalid URL '" + url + "': " + parsed.error().message());
    const auto& u = *parsed;
    if (u.scheme_id() != boost::urls::scheme::http && u.scheme_id() != boost::urls::scheme::https) {
        throw InvalidInput("only http:// and https:// URLs are supported, not '" +
                           std::string(u.scheme()) + "'");
    }
    if (u.has_userinfo()) throw InvalidInput("credentials in the URL are not supported");
    Endpoint e;
    e.https = u.scheme_id() == boost::urls::scheme::https;
    e.host = u.host_address();
    if (e.host.empty()) throw InvalidInput("URL without a host: '" + url + "'");
    e.port = u.has_port() ? std::string(u.port()) : e.https ? "443" : "80";
    if (u.has_port() && (u.port_number() == 0)) throw InvalidInput("invalid port in '" + url + "'");
    e.host_header = std::string(u.encoded_host_and_port());
    e.target = std::string(u.encoded_path());
    if (e.target.empty()) e.target = "/";
    if (u.has_query()) e.target += "?" + std::string(u.encoded_query());
    return e;
}

bool has_line_break(const std::string& s) {
    return s.find_first_of("\r\n") != std::string::npos;
}

// Runs `ioc` until `done` or the deadline. On the deadline the socket is closed, which
// completes the pending operation with an error, and that error is reported as a timeout.
void run_until(net::io_context& ioc, tcp::socket& socket, const bool& done,
               std::chrono::steady_clock::time_point deadline, bool& timed_out) {
    ioc.restart();
    while (!done) {
        if (ioc.run_one_until(deadline) == 0 && !done) {
            if (std::chrono::steady_clock::now() < deadline) continue;
            timed_out = true;
            beast::error_code ignored;
            socket.close(ignored);
            ioc.restart();
            ioc.run();  // lets the cancelled operation complete
            return;
        }
    }
}

bool is_ip_literal(const std::string& host) {
    in6_addr v6{};
    in_addr v4{};
    return ::inet_pton(AF_INET6, host.c_str(), &v6) == 1 ||
           ::inet_pton(AF_INET, host.c_str(), &v4) == 1;
}

// Writes `req` and reads the answer on `stream` (a socket, or TLS over it) before `deadline`.
template <class Stream>
Response exchange(net::io_context& ioc, Stream& stream, tcp::socket& socket,
                  bhttp::request<bhttp::string_body>& req,
                  std::chrono::steady_clock::time_point deadline, const std::string& where) {
    bool timed_out = false;
    beast::error_code ec;
    bool written = false;
    bhttp::async_write(stream, req, [&](beast::error_code e, std::size_t) {
        ec = e;
        written = true;
    });
    run_until(ioc, socket, written, deadline, timed_out);
    if (timed_out) throw Unavailable("timed out sending to " + where);
    if (ec) throw Unavailable("cannot send to " + where + ": " + ec.message());

    beast::flat_buffer buffer;
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(kMaxResponseHeaderBytes);
    parser.body_limit(kMaxResponseBytes);
    bool read = false;
    bhttp::async_read(stream, buffer, parser, [&](beast::error_code e, std::size_t) {
        ec = e;
        read = true;
    });
    run_until(ioc, socket, read, deadline, timed_out);
    if (timed_out) throw Unavailable("timed out waiting for the answer of " + where);
    if (ec == bhttp::error::body_limit) {
        throw Unavailable("answer of " + where + " exceeds " + std::to_string(kMaxResponseBytes) +
                          " bytes");
    }
    if (ec) throw Unavailable("cannot read the answer of " + where + ": " + ec.message());

    beast::error_code ignored;
    socket.shutdown(tcp::socket::shutdown_both, ignored);
    socket.close(ignored);
    auto res = parser.release();
    return Response{static_cast<int>(res.result_int()), std::move(res.body())};
}

}  // namespace

struct Client::Impl {
    explicit Impl(const ClientOptions& options) : context{ssl::context::tls_client} {
        tls::apply_policy(context.native_handle(), false);
        context.set_verify_mode(ssl::verify_peer);
        beast::error_code ec;
        if (options.ca_file.empty()) {
            context.set_default_verify_paths(ec);
            if (ec) throw InvalidInput("cannot use the system's CA certificates: " + ec.message());
        } else {
            context.load_verify_file(options.ca_file, ec);
            if (ec) {
                throw InvalidInput("cannot load the CA certificates " + options.ca_file + ": " +
                                   tls::drain_errors(ec.message()));
            }
        }
    }
    ssl::context context;
};

Client::Client(ClientOptions options) : impl_{std::make_shared<Impl>(options)} {}

Client::~Client() = default;

Response Client::post(const std::string& url,
                      const std::vector<std::pair<std::string, std::string>>& headers,
                      const std::string& body, std::chrono::milliseconds timeout) const {
    Endpoint endpoint = parse_url(url);
    bhttp::request<bhttp::string_body> req{bhttp::verb::post, endpoint.target, 11};
    req.set(bhttp::field::host, endpoint.host_header);
    for (const auto& [name, value] : headers) {
        if (name.empty() || has_line_break(name) || has_line_break(value)) {
            throw InvalidInput("invalid HTTP header '" + name + "'");
        }
        req.insert(name, value);
    }
    req.keep_alive(false);
    req.body() = body;
    req.prepare_payload();

    auto deadline = std::chrono::steady_clock::now() + timeout;
    std::string where = endpoint.host_header;
    net::io_context ioc{1};
    tcp::socket socket{ioc};
    tcp::resolver resolver{ioc};
    bool timed_out = false;
    beast::error_code ec;

    // Resolving, connecting, writing and reading are chained so that one deadline bounds them.
    tcp::resolver::results_type endpoints;
    bool resolved = false;
    resolver.async_resolve(endpoint.host, endpoint.port,
                           [&](beast::error_code e, tcp::resolver::results_type r) {
                               ec = e;
                               endpoints = std::move(r);
                               resolved = true;
                           });
    ioc.restart();
    while (!resolved) {
        if (ioc.run_one_until(deadline) == 0 && !resolved &&
            std::chrono::steady_clock::now() >= deadline) {
            resolver.cancel();
            ioc.restart();
            ioc.run();
            throw Unavailable("timed out resolving " + where);
        }
    }
    if (ec) throw Unavailable("cannot resolve " + where + ": " + ec.message());

    bool connected = false;
    net::async_connect(socket, endpoints, [&](beast::error_code e, const tcp::endpoint&) {
        ec = e;
        connected = true;
    });
    run_until(ioc, socket, connected, deadline, timed_out);
    if (timed_out) throw Unavailable("timed out connecting to " + where);
    if (ec) throw Unavailable("cannot connect to " + where + ": " + ec.message());

    if (!endpoint.https) return exchange(ioc, socket, socket, req, deadline, where);

    // SSL_CTX is safe to share between threads once built; the stream's SSL object is ours.
    ssl::stream<tcp::socket&> stream{socket, impl_->context};
    SSL* handle = stream.native_handle();
    X509_VERIFY_PARAM* param = SSL_get0_param(handle);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    const bool ip = is_ip_literal(endpoint.host);
    if (ip ? X509_VERIFY_PARAM_set1_ip_asc(param, endpoint.host.c_str()) != 1
           : X509_VERIFY_PARAM_set1_host(param, endpoint.host.c_str(), 0) != 1) {
        throw InvalidInput("cannot verify the host name " + endpoint.host);
    }
    // SNI carries names only (RFC 6066), never an address.
    if (!ip && SSL_set_tlsext_host_name(handle, endpoint.host.c_str()) != 1) {
        throw InvalidInput("cannot send the host name " + endpoint.host + " as SNI");
    }
    bool shaken = false;
    stream.async_handshake(ssl::stream_base::client, [&](beast::error_code e) {
        ec = e;
        shaken = true;
    });
    run_until(ioc, socket, shaken, deadline, timed_out);
    if (timed_out) throw Unavailable("timed out in the TLS handshake with " + where);
    if (ec) {
        const long verdict = SSL_get_verify_result(handle);
        if (verdict != X509_V_OK) {
            throw Untrusted("the TLS certificate of " + where +
                            " is not trusted: " + X509_verify_cert_error_string(verdict));
        }
        throw Unavailable("TLS handshake with " + where + " failed: " + ec.message());
    }
    return exchange(ioc, stream, socket, req, deadline, where);
}

}  // namespace ordo::platform::http_client
