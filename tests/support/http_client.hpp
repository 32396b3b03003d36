// The HTTP client tests use against real servers (keep-alive, bounded by a timeout), raw
// byte exchanges for abuse tests, and a wait for /healthz.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

// A real HTTP client for tests, over TCP. No Beast in this header; it lives in the .cpp.
namespace ordo::testing {

struct HttpResponse {
    int status = 0;
    std::map<std::string, std::string> headers;  // names lower-cased; a repeated one keeps the last
    std::string body;

    nlohmann::json json() const;                      // throws when the body is not JSON
    std::string header(std::string_view name) const;  // case-insensitive; "" when absent
};

using HttpHeaders = std::vector<std::pair<std::string, std::string>>;

// Keeps one keep-alive connection and reconnects when the server has closed it. Every
// operation gives up after `timeout` (std::runtime_error), so a hung server fails a test
// instead of hanging it. Not thread-safe: one client per thread.
class HttpClient {
   public:
    HttpClient(std::string host, std::uint16_t port,
               std::chrono::milliseconds timeout = std::chrono::seconds(30));
    ~HttpClient();
    HttpClient(HttpClient&&) noexcept;
    HttpClient& operator=(HttpClient&&) noexcept;

    HttpResponse request(std::string method, std::string target, std::string body = {},
                         HttpHeaders headers = {});
    HttpResponse get(std::string target, HttpHeaders headers = {});
    // Sets Content-Type: application/json.
    HttpResponse post_json(std::string target, const nlohmann::json& body,
                           HttpHeaders headers = {});

    // Drops the connection; the next request opens a new one.
    void close();
    // How many TCP connections this client has opened so far.
    std::size_t connections_opened() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

// For abuse tests: connects, sends exactly `bytes`, then returns everything the server sends
// back until it closes the connection or `timeout` passes. The sending side stays open.
std::string raw_exchange(const std::string& host, std::uint16_t port, const std::string& bytes,
                         std::chrono::milliseconds timeout);

// Waits until a service on 127.0.0.1:`port` answers GET /healthz with 200; false after
// `bound`.
bool wait_healthy(std::uint16_t port, std::chrono::seconds bound = std::chrono::seconds(60));

}  // namespace ordo::testing
