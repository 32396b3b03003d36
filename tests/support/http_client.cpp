// The test HTTP client on Beast: each operation asynchronous under the timeout, a request on a
// stale keep-alive connection sent once more on a new one, raw exchanges, the health wait.
#include "tests/support/http_client.hpp"

#include <algorithm>
#include <array>
#include <optional>
#include <stdexcept>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "tests/support/conditions.hpp"

namespace ordo::testing {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = net::ip::tcp;

char ascii_lower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}

std::string lower(std::string_view s) {
    std::string out(s);
    for (char& c : out) c = ascii_lower(c);
    return out;
}

// Runs one asynchronous operation for at most `timeout`. Blocking socket calls cannot be
// bounded in time, which is why the client is built on asynchronous ones.
template <class Start>
beast::error_code run_for(net::io_context& ioc, tcp::socket& socket,
                          std::chrono::milliseconds timeout, bool& timed_out, Start start) {
    std::optional<beast::error_code> result;
    start([&result](beast::error_code ec, auto&&...) { result = ec; });
    ioc.restart();
    ioc.run_for(timeout);
    if (!result) {
        timed_out = true;
        beast::error_code ignored;
        socket.close(ignored);  // completes the operation with an error
        ioc.restart();
        ioc.run();
    }
    return *result;
}

void connect(net::io_context& ioc, tcp::socket& socket, const std::string& host, std::uint16_t port,
             std::chrono::milliseconds timeout) {
    tcp::resolver resolver{ioc};
    auto endpoints = resolver.resolve(host, std::to_string(port));
    bool timed_out = false;
    auto ec = run_for(ioc, socket, timeout, timed_out, [&](auto handler) {
        net::async_connect(socket, endpoints, std::move(handler));
    });
    if (timed_out) throw std::runtime_error("timed out connecting to " + host);
    if (ec) throw std::runtime_error("cannot connect to " + host + ": " + ec.message());
}

// The connection was reused and the server had closed it meanwhile; sending again on a new
// connection is safe because nothing of the request was answered.
struct StaleConnection : std::runtime_error {
    using std::runtime_error::runtime_error;
};

}  // namespace

nlohmann::json HttpResponse::json() const {
    return nlohmann::json::parse(body);
}

std::string HttpResponse::header(std::string_view name) const {
    auto it = headers.find(lower(name));
    return it == headers.end() ? std::string{} : it->second;
}

struct HttpClient::Impl {
    std::string host;
    std::uint16_t port;
    std::chrono::milliseconds timeout;
    net::io_context ioc;
    tcp::socket socket{ioc};
    beast::flat_buffer buffer;
    std::size_t opened = 0;

    void close() {
        beast::error_code ignored;
        socket.shutdown(tcp::socket::shutdown_both, ignored);
        socket.close(ignored);
        buffer.clear();
    }

    HttpResponse exchange(bhttp::request<bhttp::string_body>& req, bool reused) {
        bool timed_out = false;
        auto ec = run_for(ioc, socket, timeout, timed_out, [&](auto handler) {
            bhttp::async_write(socket, req, std::move(handler));
        });
        if (timed_out) throw std::runtime_error("timed out sending the request");
        if (ec) {
            if (reused) throw StaleConnection(ec.message());
            throw std::runtime_error("cannot send the request: " + ec.message());
        }

        bhttp::response_parser<bhttp::string_body> parser;
        parser.body_limit(boost::none);
        if (req.method() == bhttp::verb::head) parser.skip(true);
        ec = run_for(ioc, socket, timeout, timed_out, [&](auto handler) {
            bhttp::async_read(socket, buffer, parser, std::move(handler));
        });
        if (timed_out) throw std::runtime_error("timed out waiting for the response");
        if (ec) {
            if (reused && !parser.got_some()) throw StaleConnection(ec.message());
            throw std::runtime_error("cannot read the response: " + ec.message());
        }
        auto res = parser.release();
        HttpResponse out;
        out.status = static_cast<int>(res.result_int());
        for (const auto& field : res) {
            out.headers[lower(field.name_string())] = std::string(field.value());
        }
        out.body = std::move(res.body());
        if (!res.keep_alive()) close();
        return out;
    }
};

HttpClient::HttpClient(std::string host, std::uint16_t port, std::chrono::milliseconds timeout)
    : impl_{std::make_unique<Impl>()} {
    impl_->host = std::move(host);
    impl_->port = port;
    impl_->timeout = timeout;
}

HttpClient::~HttpClient() {
    if (impl_) impl_->close();
}

HttpClient::HttpClient(HttpClient&&) noexcept = default;
HttpClient& HttpClient::operator=(HttpClient&&) noexcept = default;

HttpResponse HttpClient::request(std::string method, std::string target, std::string body,
                                 HttpHeaders headers) {
    bhttp::request<bhttp::string_body> req;
    req.method_string(method);
    req.target(target);
    req.version(11);
    req.set(bhttp::field::host, impl_->host + ":" + std::to_string(impl_->port));
    for (const auto& [name, value] : headers) req.insert(name, value);
    req.body() = std::move(body);
    req.prepare_payload();

    for (int attempt = 0;; ++attempt) {
        bool reused = impl_->socket.is_open();
        if (!reused) {
            connect(impl_->ioc, impl_->socket, impl_->host, impl_->port, impl_->timeout);
            ++impl_->opened;
        }
        try {
            return impl_->exchange(req, reused);
        } catch (const StaleConnection&) {
            impl_->close();
            if (attempt > 0) throw;
        } catch (...) {
            impl_->close();
            throw;
        }
    }
}

HttpResponse HttpClient::get(std::string target, HttpHeaders headers) {
    return request("GET", std::move(target), {}, std::move(headers));
}

HttpResponse HttpClient::post_json(std::string target, const nlohmann::json& body,
                                   HttpHeaders headers) {
    headers.emplace_back("Content-Type", "application/json");
    return request("POST", std::move(target), body.dump(), std::move(headers));
}

void HttpClient::close() {
    impl_->close();
}

std::size_t HttpClient::connections_opened() const {
    return impl_->opened;
}

std::string raw_exchange(const std::string& host, std::uint16_t port, const std::string& bytes,
                         std::chrono::milliseconds timeout) {
    net::io_context ioc;
    tcp::socket socket{ioc};
    auto deadline = std::chrono::steady_clock::now() + timeout;
    connect(ioc, socket, host, port, timeout);

    auto remaining = [&] {
        return std::max(std::chrono::milliseconds{0},
                        std::chrono::duration_cast<std::chrono::milliseconds>(
                            deadline - std::chrono::steady_clock::now()));
    };
    bool timed_out = false;
    // The server may answer and close before taking everything (e.g. an oversized body);
    // whatever it said is still worth reading, so a failed send is not an error here.
    run_for(ioc, socket, remaining(), timed_out, [&](auto handler) {
        net::async_write(socket, net::buffer(bytes), std::move(handler));
    });

    std::string received;
    std::array<char, 16 * 1024> chunk{};
    while (!timed_out && socket.is_open()) {
        std::size_t n = 0;
        auto ec = run_for(ioc, socket, remaining(), timed_out, [&](auto handler) {
            socket.async_read_some(
                net::buffer(chunk),
                [&n, handler = std::move(handler)](beast::error_code e, std::size_t got) mutable {
                    n = got;
                    handler(e, got);
                });
        });
        received.append(chunk.data(), n);
        if (ec) break;
    }
    beast::error_code ignored;
    socket.close(ignored);
    return received;
}

bool wait_healthy(std::uint16_t port, std::chrono::seconds bound) {
    HttpClient client{"127.0.0.1", port, std::chrono::seconds(2)};
    return eventually(
        [&] {
            try {
                return client.get("/healthz").status == 200;
            } catch (const std::exception&) {
                client.close();
                return false;
            }
        },
        bound);
}

}  // namespace ordo::testing
