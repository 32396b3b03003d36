// The HTTP router and server: routing and path spellings, limits and timeouts, keep-alive, bearer
// tokens and scopes, traces, metrics.

#include "platform/http/http_server.hpp"

#include <chrono>
#include <condition_variable>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/http/http.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/sse_client.hpp"
#include "tests/support/tokens.hpp"

namespace ordo::platform::http {
namespace {

using namespace std::chrono_literals;
using ordo::testing::HttpClient;
using ordo::testing::HttpHeaders;
using ordo::testing::HttpResponse;
using ordo::testing::raw_exchange;
using ordo::testing::token_set;

// Long enough never to fire on a healthy run; only bounds how long a broken one hangs.
constexpr auto kGenerous = 20s;

// Lets a test hold handlers inside the server and know when they are there.
class Gate {
   public:
    void enter_and_wait() {
        std::unique_lock lock{mutex_};
        ++entered_;
        cv_.notify_all();
        cv_.wait(lock, [this] { return open_; });
    }
    bool wait_entered(int n) {
        std::unique_lock lock{mutex_};
        return cv_.wait_for(lock, kGenerous, [&] { return entered_ >= n; });
    }
    void open() {
        std::lock_guard lock{mutex_};
        open_ = true;
        cv_.notify_all();
    }

   private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int entered_ = 0;
    bool open_ = false;
};

// Counts calls to a handler so that a test can wait for one to have happened.
class CallCounter {
   public:
    void hit() {
        std::lock_guard lock{mutex_};
        ++calls_;
        cv_.notify_all();
    }
    bool wait_for(int n) {
        std::unique_lock lock{mutex_};
        return cv_.wait_for(lock, kGenerous, [&] { return calls_ >= n; });
    }

   private:
    std::mutex mutex_;
    std::condition_variable cv_;
    int calls_ = 0;
};

Router test_router(Gate* gate = nullptr, CallCounter* health_calls = nullptr) {
    Router router;
    router.add("GET", "/healthz", Access::open, [health_calls](Request&) {
        if (health_calls) health_calls->hit();
        return Response::json(200, {{"status", "ok"}});
    });
    router.add("GET", "/v1/items/{sku}", Access::read, [](Request& req) {
        return Response::json(200, {{"sku", req.params.at("sku")},
                                    {"route", req.route},
                                    {"path", req.path},
                                    {"query", req.query},
                                    {"caller", req.caller}});
    });
    router.add("PUT", "/v1/items/{sku}", Access::admin, [](Request& req) {
        return Response::json(200, {{"caller", req.caller}});
    });
    router.add("POST", "/echo", Access::open, [](Request& req) {
        return Response::json(200, {{"size", req.body.size()},
                                    {"content_type", req.header("CONTENT-TYPE").value_or("")}});
    });
    router.add("GET", "/throw", Access::open,
               [](Request&) -> Response { throw std::runtime_error("handler exploded"); });
    router.add("GET", "/trace", Access::open, [](Request& req) {
        return Response::json(200, {{"traceparent", req.trace.traceparent()}});
    });
    router.add("GET", "/block", Access::open, [gate](Request&) {
        if (gate) gate->enter_and_wait();
        return Response::json(200, {{"released", true}});
    });
    return router;
}

class TestServer {
   public:
    explicit TestServer(Router router, ServerOptions options = {}) {
        server_ = std::make_unique<Server>(std::move(options), std::move(router),
                                           Logger::null_logger(), registry_);
        server_->start();
    }
    ~TestServer() { server_->stop(); }

    std::uint16_t port() const { return server_->port(); }
    Server& server() { return *server_; }
    metrics::Registry& registry() { return registry_; }
    HttpClient client() const { return HttpClient{"127.0.0.1", port()}; }
    std::string raw(const std::string& bytes) const {
        return raw_exchange("127.0.0.1", port(), bytes, kGenerous);
    }
    double rejected(const std::string& reason) {
        return registry_
            .counter("ordo_http_rejected_total", "", {{"component", "http"}, {"reason", reason}})
            .value();
    }

   private:
    metrics::Registry registry_;
    std::unique_ptr<Server> server_;
};

void expect_problem(const HttpResponse& res, int status, const std::string& type) {
    EXPECT_EQ(res.status, status) << res.body;
    EXPECT_EQ(res.header("content-type"), "application/problem+json");
    auto body = res.json();
    EXPECT_EQ(body["type"], type);
    EXPECT_EQ(body["status"], status);
    EXPECT_TRUE(body["title"].is_string());
    EXPECT_TRUE(body["detail"].is_string());
}

// --- Router and plain types -------------------------------------------------------------

TEST(Router, PrefersALiteralSegmentOverAParameter) {
    Router router;
    router.add("GET", "/v1/orders/{order_id}", Access::read, [](Request&) { return Response{}; });
    router.add("GET", "/v1/orders/summary", Access::read, [](Request&) { return Response{}; });
    auto m = router.match("GET", "/v1/orders/summary");
    ASSERT_EQ(m.kind, Router::Match::Kind::found);
    EXPECT_EQ(m.route, "/v1/orders/summary");
    EXPECT_TRUE(m.params.empty());
    m = router.match("GET", "/v1/orders/o-1");
    ASSERT_EQ(m.kind, Router::Match::Kind::found);
    EXPECT_EQ(m.route, "/v1/orders/{order_id}");
    EXPECT_EQ(m.params.at("order_id"), "o-1");
}

TEST(Router, ListsAllowedMethodsWhenOnlyTheMethodIsWrong) {
    Router router;
    router.add("POST", "/v1/dead-letters/{id}/retry", Access::read,
               [](Request&) { return Response{}; });
    router.add("DELETE", "/v1/dead-letters/{id}/retry", Access::read,
               [](Request&) { return Response{}; });
    auto m = router.match("GET", "/v1/dead-letters/7/retry");
    ASSERT_EQ(m.kind, Router::Match::Kind::method_not_allowed);
    EXPECT_EQ(m.allowed, (std::vector<std::string>{"DELETE", "POST"}));
    EXPECT_EQ(router.match("GET", "/v1/dead-letters/7").kind, Router::Match::Kind::not_found);
    EXPECT_EQ(router.match("POST", "/v1/dead-letters//retry").kind, Router::Match::Kind::malformed);
}

TEST(Router, DecodesParametersAndRejectsBrokenEscapes) {
    Router router;
    router.add("GET", "/v1/inventory/{sku}", Access::read, [](Request&) { return Response{}; });
    auto m = router.match("GET", "/v1/inventory/a%2Db%20c");
    ASSERT_EQ(m.kind, Router::Match::Kind::found);
    EXPECT_EQ(m.params.at("sku"), "a-b c");
    EXPECT_EQ(router.match("GET", "/v1/inventory/%zz").kind, Router::Match::Kind::malformed);
    EXPECT_EQ(router.match("GET", "/v1/inventory/%4").kind, Router::Match::Kind::malformed);
}

TEST(Router, GivesAPathOneSpellingAndRefusesTheRest) {
    Router router;
    router.add("GET", "/v1/inventory/{sku}", Access::read, [](Request&) { return Response{}; });
    router.add("GET", "/", Access::open, [](Request&) { return Response{}; });
    EXPECT_EQ(router.match("GET", "/").kind, Router::Match::Kind::found);
    for (const char* path :
         {"//v1/inventory/x", "/v1//inventory/x", "/v1/inventory/x/", "/v1/./inventory/x",
          "/v1/../v1/inventory/x", "/v1/%2e/inventory/x", "/v1/%2E%2E/v1/inventory/x",
          "/v1/inventory/.", "/v1/inventory/..", "/v1/inventory/a%2Fb", "/v1/inventory/a%2fb",
          "/v1/inventory/a%5Cb", "/v1/inventory/a%00b", "/v1/inventory/a%0Ab",
          "/v1/inventory/a%7Fb", "/v1/inventory/%", "v1/inventory/x", ""}) {
        auto m = router.match("GET", path);
        EXPECT_EQ(m.kind, Router::Match::Kind::malformed) << path;
        EXPECT_FALSE(m.malformed.empty()) << path;
    }
}

TEST(Router, RefusesMalformedAndDuplicatePatterns) {
    Router router;
    auto h = [](Request&) { return Response{}; };
    router.add("GET", "/v1/x/{id}", Access::read, h);
    EXPECT_THROW(router.add("GET", "/v1/x/{id}", Access::read, h), std::invalid_argument);
    EXPECT_THROW(router.add("GET", "v1/x", Access::open, h), std::invalid_argument);
    EXPECT_THROW(router.add("GET", "/v1/x-{id}", Access::read, h), std::invalid_argument);
    EXPECT_THROW(router.add("GET", "/v1/{}", Access::read, h), std::invalid_argument);
    router.add("POST", "/v1/x/{id}", Access::read, h);
    EXPECT_EQ(router.routes(), (std::vector<Router::Listed>{{"GET", "/v1/x/{id}", Access::read},
                                                            {"POST", "/v1/x/{id}", Access::read}}));
}

TEST(Problem, TakesTitleFromTheTableAndListsFieldErrors) {
    Response r = problem(422, "validation_failed", "bad lines",
                         {{"lines[0].quantity", "must be at least 1"}});
    EXPECT_EQ(r.status, 422);
    EXPECT_EQ(r.content_type, "application/problem+json");
    auto body = nlohmann::json::parse(r.body);
    EXPECT_EQ(body["type"], "validation_failed");
    EXPECT_EQ(body["title"], "Validation failed");
    EXPECT_EQ(body["status"], 422);
    EXPECT_EQ(body["detail"], "bad lines");
    EXPECT_EQ(body["errors"][0]["field"], "lines[0].quantity");
    EXPECT_FALSE(nlohmann::json::parse(problem(404, "not_found", "x").body).contains("errors"));

    Response unavailable = problem("unavailable", "try later");
    EXPECT_EQ(unavailable.status, 503);
    EXPECT_EQ(unavailable.headers, (Headers{{"Retry-After", "1"}}));
    EXPECT_EQ(problem_status("idempotency_key_reused"), 422);
    EXPECT_EQ(problem_status("payload_too_large"), 413);
    EXPECT_EQ(problem_status("no_such_type"), std::nullopt);
}

// --- The server over real sockets --------------------------------------------------------

TEST(HttpServer, RoutesWithDecodedPathParametersAndQuery) {
    TestServer server{test_router()};
    auto client = server.client();
    auto res = client.get("/v1/items/a%20b%2Dc?limit=10&q=two+words&e=%C3%A9");
    ASSERT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(res.header("content-type"), "application/json");
    auto body = res.json();
    EXPECT_EQ(body["sku"], "a b-c");
    EXPECT_EQ(body["route"], "/v1/items/{sku}");
    EXPECT_EQ(body["path"], "/v1/items/a%20b%2Dc");
    EXPECT_EQ(body["query"]["limit"], "10");
    EXPECT_EQ(body["query"]["q"], "two words");
    EXPECT_EQ(body["query"]["e"], "\xC3\xA9");
    EXPECT_EQ(res.header("content-length"), std::to_string(res.body.size()));

    auto echoed = client.post_json("/echo", {{"hello", "world"}});
    ASSERT_EQ(echoed.status, 200);
    EXPECT_EQ(echoed.json()["content_type"], "application/json");
}

TEST(HttpServer, UnknownPathIsANotFoundProblem) {
    TestServer server{test_router()};
    auto client = server.client();
    expect_problem(client.get("/nope"), 404, "not_found");
    expect_problem(client.get("/v1/items/x/extra"), 404, "not_found");
}

TEST(HttpServer, APathInAnotherSpellingIsABadRequestThatNamesTheProblem) {
    TestServer server{test_router()};
    auto client = server.client();
    expect_problem(client.get("/v1/items/%zz"), 400, "bad_request");
    expect_problem(client.get("//v1/items/x"), 400, "bad_request");
    expect_problem(client.get("/v1/items/a%2Fb"), 400, "bad_request");
    auto dot = client.get("/v1/%2e%2e/v1/items/x");
    expect_problem(dot, 400, "bad_request");
    EXPECT_EQ(dot.json()["detail"], "the path has a dot segment");
}

TEST(HttpServer, WrongMethodIsMethodNotAllowedWithAllow) {
    TestServer server{test_router()};
    auto client = server.client();
    auto res = client.request("DELETE", "/v1/items/x");
    expect_problem(res, 405, "method_not_allowed");
    EXPECT_EQ(res.header("allow"), "GET, PUT");
}

TEST(HttpServer, KeepAliveServesManyRequestsOnOneConnection) {
    TestServer server{test_router()};
    auto client = server.client();
    for (int i = 0; i < 100; ++i) {
        auto res = i % 2 == 0 ? client.get("/healthz") : client.post_json("/echo", {{"i", i}});
        ASSERT_EQ(res.status, 200);
    }
    EXPECT_EQ(client.connections_opened(), 1U);
}

TEST(HttpServer, SpeaksHttp10AndClosesAfterwards) {
    TestServer server{test_router()};
    std::string reply = server.raw("GET /healthz HTTP/1.0\r\n\r\n");
    EXPECT_EQ(reply.rfind("HTTP/1.0 200", 0), 0U) << reply;
    EXPECT_NE(reply.find("{\"status\":\"ok\"}"), std::string::npos);
}

TEST(HttpServer, BodyOverTheLimitIsPayloadTooLarge) {
    TestServer server{test_router()};
    auto client = server.client();
    auto res = client.request("POST", "/echo", std::string(2 << 20, 'x'),
                              {{"Content-Type", "application/json"}});
    expect_problem(res, 413, "payload_too_large");
    EXPECT_EQ(server.rejected("too_large"), 1);

    // Refused from the header alone, before any of the body is sent.
    std::string reply = server.raw(
        "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2097152\r\n\r\n");
    EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0U) << reply;
    EXPECT_NE(reply.find("payload_too_large"), std::string::npos);

    // A chunked body has no length up front; the parser's limit stops it.
    std::string chunk(64 * 1024, 'y');
    std::string chunked = "POST /echo HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n";
    for (int i = 0; i < 32; ++i) chunked += "10000\r\n" + chunk + "\r\n";
    chunked += "0\r\n\r\n";
    reply = server.raw(chunked);
    EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0U) << reply.substr(0, 200);
    EXPECT_EQ(server.rejected("too_large"), 3);

    // A body just under the limit is fine.
    auto ok = client.request("POST", "/echo", std::string((1 << 20) - 1, 'x'));
    ASSERT_EQ(ok.status, 200);
    EXPECT_EQ(ok.json()["size"], (1 << 20) - 1);
}

TEST(HttpServer, HugeHeaderIsHeaderTooLarge) {
    TestServer server{test_router()};
    auto client = server.client();
    auto res = client.get("/healthz", {{"X-Padding", std::string(32 * 1024, 'p')}});
    expect_problem(res, 431, "header_too_large");
    EXPECT_EQ(server.rejected("header_too_large"), 1);
    EXPECT_EQ(client.get("/healthz").status, 200);  // reconnects
}

TEST(HttpServer, StalledRequestTimesOutWith408) {
    ServerOptions options;
    options.read_timeout = 300ms;
    TestServer server{test_router(), options};
    // Half a body, then nothing: raw_exchange returns when the server answers and closes.
    std::string reply =
        server.raw("POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"half\":");
    EXPECT_EQ(reply.rfind("HTTP/1.1 408", 0), 0U) << reply;
    EXPECT_NE(reply.find("request_timeout"), std::string::npos);
    EXPECT_NE(reply.find("Connection: close"), std::string::npos);
    EXPECT_EQ(server.rejected("timeout"), 1);

    // Half a header line stalls the same way.
    reply = server.raw("GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ");
    EXPECT_EQ(reply.rfind("HTTP/1.1 408", 0), 0U) << reply;
}

TEST(HttpServer, MalformedRequestIsBadRequestAndCloses) {
    TestServer server{test_router()};
    std::string reply = server.raw("GET /healthz HTTP/1.x\r\nHost: x\r\n\r\n");
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0U) << reply;
    EXPECT_NE(reply.find("bad_request"), std::string::npos);
    reply = server.raw("GET /healthz HTTP/1.1\r\nNo colon in this header\r\n\r\n");
    EXPECT_EQ(reply.rfind("HTTP/1.1 400", 0), 0U) << reply;
    EXPECT_EQ(server.rejected("bad_request"), 2);
}

TEST(HttpServer, AnswersExpectContinueBeforeTheBody) {
    TestServer server{test_router()};
    std::string reply = server.raw(
        "POST /echo HTTP/1.1\r\nHost: x\r\nConnection: close\r\nExpect: 100-continue\r\n"
        "Content-Length: 2\r\n\r\n{}");
    EXPECT_EQ(reply.rfind("HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200", 0), 0U) << reply;
}

TEST(HttpServer, RefusesConnectionsBeyondTheLimit) {
    ServerOptions options;
    options.max_connections = 2;
    TestServer server{test_router(), options};
    // Two keep-alive connections that have been served are certainly open on the server.
    auto first = server.client();
    auto second = server.client();
    ASSERT_EQ(first.get("/healthz").status, 200);
    ASSERT_EQ(second.get("/healthz").status, 200);

    std::string reply = server.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    EXPECT_EQ(reply.rfind("HTTP/1.1 503", 0), 0U) << reply;
    EXPECT_NE(reply.find("Retry-After: 1"), std::string::npos);
    EXPECT_NE(reply.find("unavailable"), std::string::npos);
    EXPECT_EQ(server.rejected("connection_limit"), 1);

    // Once a held connection goes, the gauge says so and a new client is served.
    first.close();
    auto& open = server.registry().gauge("ordo_http_connections", "", {{"component", "http"}});
    auto deadline = std::chrono::steady_clock::now() + kGenerous;
    while (open.value() > 1 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::yield();
    }
    ASSERT_EQ(open.value(), 1);
    EXPECT_EQ(server.client().get("/healthz").status, 200);
}

// A connection from `source` (any 127.x.y.z is this host): sends `request` once, returns
// everything read until the server closes or `kGenerous` passes. The fd stays open while
// `hold` is set, so that the server keeps counting it.
class RawConnection {
   public:
    RawConnection(const char* source, std::uint16_t port) {
        fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in from{};
        from.sin_family = AF_INET;
        ::inet_pton(AF_INET, source, &from.sin_addr);
        sockaddr_in to{};
        to.sin_family = AF_INET;
        to.sin_port = htons(port);
        ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
        if (::bind(fd_, reinterpret_cast<sockaddr*>(&from), sizeof from) != 0 ||
            ::connect(fd_, reinterpret_cast<sockaddr*>(&to), sizeof to) != 0) {
            throw std::runtime_error("cannot connect from " + std::string(source));
        }
        timeval tv{static_cast<time_t>(std::chrono::seconds(kGenerous).count()), 0};
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    }
    ~RawConnection() { ::close(fd_); }
    // Sends a keep-alive request and reads one response's status line and headers.
    std::string exchange(const std::string& request) {
        ::send(fd_, request.data(), request.size(), MSG_NOSIGNAL);
        std::string out;
        char buf[4096];
        while (out.find("\r\n\r\n") == std::string::npos) {
            auto n = ::recv(fd_, buf, sizeof buf, 0);
            if (n <= 0) break;
            out.append(buf, static_cast<std::size_t>(n));
        }
        return out;
    }

   private:
    int fd_ = -1;
};

TEST(HttpServer, OneClientAddressCannotTakeEveryConnection) {
    ServerOptions options;
    options.max_connections = 8;
    options.max_connections_per_client = 2;
    TestServer server{test_router(), options};
    const std::string get = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
    RawConnection a1{"127.0.0.2", server.port()}, a2{"127.0.0.2", server.port()};
    ASSERT_EQ(a1.exchange(get).rfind("HTTP/1.1 200", 0), 0U);
    ASSERT_EQ(a2.exchange(get).rfind("HTTP/1.1 200", 0), 0U);

    RawConnection a3{"127.0.0.2", server.port()};
    auto refused = a3.exchange(get);
    EXPECT_EQ(refused.rfind("HTTP/1.1 503", 0), 0U) << refused;
    EXPECT_EQ(server.rejected("client_connection_limit"), 1);
    // Another address is still served while the first holds its two.
    RawConnection b1{"127.0.0.3", server.port()};
    EXPECT_EQ(b1.exchange(get).rfind("HTTP/1.1 200", 0), 0U);
    EXPECT_EQ(server.rejected("connection_limit"), 0);
}

TEST(HttpServer, FullWorkerQueueAnswersUnavailable) {
    Gate gate;
    ServerOptions options;
    options.worker_threads = 1;
    options.max_queued = 1;
    TestServer server{test_router(&gate), options};

    auto running = std::async(std::launch::async, [&] { return server.client().get("/block"); });
    ASSERT_TRUE(gate.wait_entered(1));

    // The only worker is busy: of two more requests one waits in the queue and the other is
    // refused at once, whichever arrives first.
    std::mutex mutex;
    std::condition_variable cv;
    std::vector<HttpResponse> answers;
    auto send = [&] {
        auto res = server.client().get("/block");
        std::lock_guard lock{mutex};
        answers.push_back(res);
        cv.notify_all();
    };
    std::thread a{send};
    std::thread b{send};
    {
        std::unique_lock lock{mutex};
        ASSERT_TRUE(cv.wait_for(lock, kGenerous, [&] { return !answers.empty(); }));
        expect_problem(answers.front(), 503, "unavailable");
        EXPECT_EQ(answers.front().header("retry-after"), "1");
    }
    gate.open();
    a.join();
    b.join();
    ASSERT_EQ(answers.size(), 2U);
    EXPECT_EQ(answers.back().status, 200);
    EXPECT_EQ(running.get().status, 200);
    EXPECT_EQ(server.rejected("queue_full"), 1);
}

TEST(HttpServer, ThrowingHandlerIsInternalErrorAndServingGoesOn) {
    TestServer server{test_router()};
    auto client = server.client();
    auto res = client.get("/throw");
    expect_problem(res, 500, "internal");
    EXPECT_EQ(res.json()["detail"].get<std::string>().find("exploded"), std::string::npos);
    EXPECT_EQ(client.get("/healthz").status, 200);
    EXPECT_EQ(client.connections_opened(), 1U);
}

TEST(HttpServer, ContinuesAValidTraceAndStartsOneOtherwise) {
    TestServer server{test_router()};
    auto client = server.client();
    const std::string parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    auto res = client.get("/trace", {{"traceparent", parent}});
    ASSERT_EQ(res.status, 200);
    auto span = TraceContext::parse(res.header("traceparent"));
    ASSERT_TRUE(span.has_value()) << res.header("traceparent");
    EXPECT_EQ(span->trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");
    EXPECT_NE(span->span_id_hex(), "00f067aa0ba902b7");
    EXPECT_EQ(res.json()["traceparent"], res.header("traceparent"));  // handler saw the same span

    auto fresh = client.get("/trace", {{"traceparent", "00-not-a-valid-header-01"}});
    auto fresh_span = TraceContext::parse(fresh.header("traceparent"));
    ASSERT_TRUE(fresh_span.has_value());
    EXPECT_NE(fresh_span->trace_id_hex(), "4bf92f3577b34da6a3ce929d0e0e4736");

    // Error responses carry one too.
    EXPECT_TRUE(TraceContext::parse(client.get("/nope").header("traceparent")).has_value());
}

TEST(HttpServer, BearerTokenGuardsTheV1Api) {
    ServerOptions options;
    options.tokens = token_set({{"one", "read", "token-one"}, {"two", "read,admin", "token-two"}});
    TestServer server{test_router(), options};
    auto client = server.client();

    auto missing = client.get("/v1/items/x");
    expect_problem(missing, 401, "unauthorized");
    EXPECT_EQ(missing.header("www-authenticate"), "Bearer");
    expect_problem(client.get("/v1/items/x", {{"Authorization", "Bearer token-three"}}), 401,
                   "unauthorized");
    expect_problem(client.get("/v1/items/x", {{"Authorization", "Basic token-two"}}), 401,
                   "unauthorized");
    // The file holds hashes: presenting a hash is not presenting the token.
    expect_problem(
        client.get("/v1/items/x", {{"Authorization", "Bearer " + to_hex(sha256("token-one"))}}),
        401, "unauthorized");
    // Not even whether a route exists is told without a token.
    expect_problem(client.get("/v1/nothing-here"), 401, "unauthorized");

    auto two = client.get("/v1/items/x", {{"Authorization", "Bearer token-two"}});
    ASSERT_EQ(two.status, 200);
    EXPECT_EQ(two.json()["caller"], "two");
    auto one = client.get("/v1/items/x", {{"Authorization", "bearer   token-one "}});
    ASSERT_EQ(one.status, 200);
    EXPECT_EQ(one.json()["caller"], "one");
    EXPECT_EQ(client.get("/healthz").status, 200);
}

TEST(HttpServer, ATokenWithoutTheRoutesScopeIsForbidden) {
    ServerOptions options;
    options.tokens = token_set({{"reader", "read", "r-token"}, {"operator", "admin", "a-token"}});
    TestServer server{test_router(), options};
    auto client = server.client();
    auto as = [](const char* token) {
        return HttpHeaders{{"Authorization", std::string("Bearer ") + token}};
    };

    auto res = client.request("PUT", "/v1/items/x", "", as("r-token"));
    expect_problem(res, 403, "forbidden");
    EXPECT_EQ(res.header("www-authenticate"), "Bearer error=\"insufficient_scope\"");
    EXPECT_NE(res.json()["detail"].get<std::string>().find("PUT /v1/items/{sku}"),
              std::string::npos);
    expect_problem(client.get("/v1/items/x", as("a-token")), 403, "forbidden");
    auto put = client.request("PUT", "/v1/items/x", "", as("a-token"));
    ASSERT_EQ(put.status, 200);
    EXPECT_EQ(put.json()["caller"], "operator");
}

TEST(HttpServer, WithoutTokensTheCallerIsAnonymous) {
    TestServer server{test_router()};
    auto res = server.client().get("/v1/items/x");
    ASSERT_EQ(res.status, 200);
    EXPECT_EQ(res.json()["caller"], "anonymous");
}

TEST(HttpServer, RotatedTokensApplyToTheNextRequest) {
    ServerOptions options;
    options.tokens = token_set({{"old", "read", "old-token"}});
    TestServer server{test_router(), options};
    auto client = server.client();
    ASSERT_EQ(client.get("/v1/items/x", {{"Authorization", "Bearer old-token"}}).status, 200);
    server.server().set_tokens(token_set({{"new", "read", "new-token"}}));
    expect_problem(client.get("/v1/items/x", {{"Authorization", "Bearer old-token"}}), 401,
                   "unauthorized");
    auto res = client.get("/v1/items/x", {{"Authorization", "Bearer new-token"}});
    ASSERT_EQ(res.status, 200);
    EXPECT_EQ(res.json()["caller"], "new");
    // No later set can switch authentication off.
    EXPECT_THROW(server.server().set_tokens(nullptr), std::invalid_argument);
    EXPECT_THROW(server.server().set_tokens(std::make_shared<const TokenSet>()),
                 std::invalid_argument);
    expect_problem(client.get("/v1/items/x"), 401, "unauthorized");
}

TEST(HttpServer, EveryMethodOnAGuardedPathMeetsTheTokenCheck) {
    ServerOptions options;
    options.tokens = token_set({{"one", "read", "token-one"}});
    TestServer server{test_router(), options};
    auto client = server.client();
    for (const char* method : {"OPTIONS", "DELETE", "PATCH", "TRACE", "BREW"}) {
        SCOPED_TRACE(method);
        auto res = client.request(method, "/v1/items/x");
        EXPECT_EQ(res.status, 401);
    }
}

TEST(HttpServer, EverySpellingOfAGuardedPathMeetsTheTokenCheck) {
    ServerOptions options;
    options.tokens = token_set({{"one", "read", "token-one"}});
    TestServer server{test_router(), options};
    auto client = server.client();
    const HttpHeaders token{{"Authorization", "Bearer token-one"}};
    // Spellings of the same route: 401 without a token, the route itself with one.
    for (const char* path :
         {"/%761/items/x", "/%76%31/items/x", "/v%31/items/x", "/v1/%69tems/x"}) {
        SCOPED_TRACE(path);
        expect_problem(client.get(path), 401, "unauthorized");
        auto res = client.get(path, token);
        ASSERT_EQ(res.status, 200) << res.body;
        EXPECT_EQ(res.json()["route"], "/v1/items/{sku}");
    }
    // Spellings the router refuses, and a case it does not fold: 401 without a token, then
    // a problem that says why.
    for (auto [path, status] :
         std::vector<std::pair<const char*, int>>{{"//v1/items/x", 400},
                                                  {"/v1/./items/x", 400},
                                                  {"/v1/../v1/items/x", 400},
                                                  {"/v1/%2e%2e/v1/items/x", 400},
                                                  {"/v1/items/x%2F..%2F..", 400},
                                                  {"/v1/items/x/", 400},
                                                  {"/V1/items/x", 404},
                                                  {"/%56%31/items/x", 404},
                                                  {"/%2F/v1/items/x", 400}}) {
        SCOPED_TRACE(path);
        expect_problem(client.get(path), 401, "unauthorized");
        EXPECT_EQ(client.get(path, token).status, status);
    }
}

TEST(HttpServer, ExportsRequestMetricsByRouteTemplate) {
    TestServer server{test_router()};
    auto client = server.client();
    ASSERT_EQ(client.get("/v1/items/abc").status, 200);
    ASSERT_EQ(client.get("/nope").status, 404);
    std::string text = server.registry().render();
    EXPECT_NE(
        text.find("ordo_http_request_duration_seconds_count{component=\"http\",method=\"GET\","
                  "route=\"/v1/items/{sku}\",status_class=\"2xx\"} 1"),
        std::string::npos)
        << text;
    EXPECT_NE(text.find("route=\"unmatched\",status_class=\"4xx\"} 1"), std::string::npos);
    EXPECT_NE(text.find("ordo_http_connections{component=\"http\"} 1"), std::string::npos);
    EXPECT_NE(text.find("ordo_http_requests_in_flight{component=\"http\"} 0"), std::string::npos);
}

TEST(HttpServer, StartFailsClearlyWhenThePortIsTaken) {
    TestServer server{test_router()};
    metrics::Registry registry;
    ServerOptions options;
    options.port = server.port();
    Server second{options, test_router(), Logger::null_logger(), registry};
    try {
        second.start();
        FAIL() << "start() should have thrown";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(std::to_string(server.port())), std::string::npos)
            << e.what();
    }
}

TEST(HttpServer, StopLetsTheRequestInFlightFinish) {
    Gate gate;
    CallCounter health;
    TestServer server{test_router(&gate, &health)};

    auto in_flight = std::async(std::launch::async, [&] { return server.client().get("/block"); });
    ASSERT_TRUE(gate.wait_entered(1));

    // An idle keep-alive connection: raw_exchange returns once the server closes it, which
    // only stop() does here (the idle timeout is a minute). That tells us stop() is under way.
    auto idle = std::async(std::launch::async,
                           [&] { return server.raw("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"); });
    ASSERT_TRUE(health.wait_for(1));

    auto stopping = std::async(std::launch::async, [&] { server.server().stop(); });
    ASSERT_EQ(idle.wait_for(kGenerous), std::future_status::ready);
    EXPECT_EQ(idle.get().rfind("HTTP/1.1 200", 0), 0U);
    EXPECT_EQ(stopping.wait_for(0s), std::future_status::timeout);  // still draining

    gate.open();
    auto res = in_flight.get();
    EXPECT_EQ(res.status, 200);
    EXPECT_EQ(res.header("connection"), "close");
    ASSERT_EQ(stopping.wait_for(kGenerous), std::future_status::ready);
    stopping.get();
    EXPECT_THROW(server.client().get("/healthz"), std::runtime_error);  // no longer listening
}

// A route whose answer is a stream; the test gets each stream as it opens.
class StreamRoute {
   public:
    Router router() {
        Router r;
        r.add("GET", "/stream", Access::read, [this](Request&) {
            return Response::streamed("text/event-stream", [this](Stream stream) {
                std::lock_guard lock{mutex_};
                streams_.push_back(std::move(stream));
                cv_.notify_all();
            });
        });
        return r;
    }
    Stream wait_stream(std::size_t n = 1) {
        std::unique_lock lock{mutex_};
        if (!cv_.wait_for(lock, kGenerous, [&] { return streams_.size() >= n; })) return nullptr;
        return streams_[n - 1];
    }

   private:
    std::mutex mutex_;
    std::condition_variable cv_;
    std::vector<Stream> streams_;
};

TEST(HttpServer, StreamsPiecesInOrderAfterTheHeadAndClosesWhenTheStreamEnds) {
    StreamRoute route;
    TestServer server{route.router()};
    ordo::testing::SseClient client{server.port(), "/stream"};
    auto stream = route.wait_stream();
    ASSERT_TRUE(stream);
    EXPECT_TRUE(stream->send("one "));
    EXPECT_TRUE(stream->send("two"));
    stream->end();
    EXPECT_FALSE(stream->send("after the end"));
    ASSERT_EQ(client.status(), 200);
    EXPECT_NE(client.head().find("Content-Type: text/event-stream"), std::string::npos);
    EXPECT_NE(client.head().find("Connection: close"), std::string::npos);
    EXPECT_NE(client.head().find("traceparent: "), std::string::npos);
    EXPECT_EQ(client.head().find("Content-Length"), std::string::npos);
    EXPECT_EQ(client.body(), "one two");
    EXPECT_TRUE(client.closed());
    EXPECT_TRUE(ordo::testing::eventually([&] { return stream->pending() == 0; }, 20s));
}

TEST(HttpServer, AStreamEndsWhenItsClientGoesAway) {
    StreamRoute route;
    TestServer server{route.router()};
    ordo::testing::SseClient client{server.port(), "/stream"};
    auto stream = route.wait_stream();
    ASSERT_TRUE(stream);
    ASSERT_TRUE(stream->send("hello"));
    ASSERT_EQ(client.status(), 200);
    client.abort();
    EXPECT_TRUE(ordo::testing::eventually([&] { return stream->ended(); }, 20s));
    EXPECT_FALSE(stream->send("nobody listens"));
    // The server goes on serving others.
    ordo::testing::SseClient next{server.port(), "/stream"};
    EXPECT_EQ(next.status(), 200);
    EXPECT_TRUE(route.wait_stream(2));
}

TEST(HttpServer, PendingCountsWhatAClientHasNotReadYet) {
    StreamRoute route;
    TestServer server{route.router()};
    ordo::testing::SseClient client{server.port(), "/stream", {}, 4096};
    auto stream = route.wait_stream();
    ASSERT_TRUE(stream);
    const std::string piece(64 * 1024, 'x');
    constexpr std::size_t kPieces = 256;
    // Far more than the socket buffers on both sides hold: the rest waits in the server.
    for (std::size_t i = 0; i < kPieces; ++i) ASSERT_TRUE(stream->send(piece));
    ASSERT_TRUE(ordo::testing::eventually([&] { return stream->written() > 0; }, 20s));
    EXPECT_GT(stream->pending(), 0U);
    EXPECT_LT(stream->written(), kPieces * piece.size());
    ASSERT_EQ(client.status(), 200);
    EXPECT_EQ(client.read(kPieces * piece.size()).size(), kPieces * piece.size());
    EXPECT_TRUE(ordo::testing::eventually([&] { return stream->pending() == 0; }, 20s));
    EXPECT_GE(stream->written(), kPieces * piece.size());
    EXPECT_FALSE(stream->ended());
}

TEST(HttpServer, AbortDropsWhatIsUnsentAndSendsItsLastWordInstead) {
    StreamRoute route;
    TestServer server{route.router()};
    ordo::testing::SseClient client{server.port(), "/stream", {}, 4096};
    auto stream = route.wait_stream();
    ASSERT_TRUE(stream);
    const std::string piece(64 * 1024, 'x');
    constexpr std::size_t kPieces = 256;
    for (std::size_t i = 0; i < kPieces; ++i) ASSERT_TRUE(stream->send(piece));
    ASSERT_TRUE(ordo::testing::eventually([&] { return stream->written() > 0; }, 20s));
    stream->abort("|the end");
    EXPECT_TRUE(stream->ended());
    EXPECT_FALSE(stream->send("more"));
    ASSERT_EQ(client.status(), 200);
    std::string body = client.body();
    EXPECT_TRUE(client.closed());
    ASSERT_GT(body.size(), 8U);
    EXPECT_EQ(body.substr(body.size() - 8), "|the end");
    EXPECT_LT(body.size(), kPieces * piece.size()) << "what was unsent was dropped";
    EXPECT_EQ(body.find_first_not_of('x'), body.size() - 8) << "whole pieces, then the end";
}

TEST(HttpServer, NewTokensEndTheStreamsTheOldOnesOpened) {
    StreamRoute route;
    ServerOptions options;
    options.tokens = ordo::testing::token_set({{"old", "read", "old-token"}});
    TestServer server{route.router(), options};
    ordo::testing::SseClient client{
        server.port(), "/stream", {{"Authorization", "Bearer old-token"}}};
    auto stream = route.wait_stream();
    ASSERT_TRUE(stream);
    ASSERT_EQ(client.status(), 200);
    server.server().set_tokens(ordo::testing::token_set({{"new", "read", "new-token"}}));
    EXPECT_TRUE(ordo::testing::eventually([&] { return stream->ended(); }, 20s));
    client.body();
    EXPECT_TRUE(client.closed());
    ordo::testing::SseClient again{
        server.port(), "/stream", {{"Authorization", "Bearer old-token"}}};
    EXPECT_EQ(again.status(), 401);
}

TEST(HttpServer, StoppingTheServerEndsItsStreams) {
    StreamRoute route;
    TestServer server{route.router()};
    ordo::testing::SseClient client{server.port(), "/stream"};
    auto stream = route.wait_stream();
    ASSERT_TRUE(stream);
    // The head has arrived: the stream is open, not still opening (a stop that races with
    // the opening ends the stream before what is sent meanwhile).
    ASSERT_EQ(client.status(), 200);
    ASSERT_TRUE(stream->send("before the stop"));
    server.server().stop(std::chrono::seconds(10));
    EXPECT_TRUE(stream->ended());
    EXPECT_EQ(client.body(), "before the stop");
    EXPECT_TRUE(client.closed());
}

}  // namespace
}  // namespace ordo::platform::http
