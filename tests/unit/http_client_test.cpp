// The HTTP client: posts, error statuses, timeouts, unreachable servers, URLs it refuses.

#include "platform/http/http_client.hpp"

#include <chrono>
#include <future>
#include <mutex>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http.hpp"
#include "platform/http/http_server.hpp"

namespace ordo::platform::http_client {
namespace {

using namespace std::chrono_literals;

// Long enough never to fire on a healthy run.
constexpr auto kGenerous = 20s;

Response post(const std::string& url,
              const std::vector<std::pair<std::string, std::string>>& headers,
              const std::string& body, std::chrono::milliseconds timeout) {
    return Client{}.post(url, headers, body, timeout);
}

struct Received {
    std::mutex mutex;
    std::string target;
    std::string body;
    std::string content_type;
    std::string host;
};

class HttpClientTest : public ::testing::Test {
   protected:
    void SetUp() override {
        http::Router router;
        router.add("POST", "/hooks/{name}", http::Access::open, [this](http::Request& r) {
            std::lock_guard lock{received_.mutex};
            received_.target = r.target;
            received_.body = r.body;
            received_.content_type = r.header("content-type").value_or("");
            received_.host = r.header("host").value_or("");
            http::Response res;
            res.status = 202;
            res.content_type = "text/plain";
            res.body = "got " + std::to_string(r.body.size());
            return res;
        });
        router.add("POST", "/fail", http::Access::open,
                   [](http::Request&) { return http::problem(500, "internal", "nope"); });
        router.add("POST", "/slow", http::Access::open, [this](http::Request&) {
            release_.wait();  // answers only once the test has seen the client give up
            return http::Response::json(200, nlohmann::json::object());
        });
        server_ = std::make_unique<http::Server>(http::ServerOptions{}, std::move(router),
                                                 Logger::null_logger(), registry_);
        server_->start();
        base_ = "http://127.0.0.1:" + std::to_string(server_->port());
    }

    void TearDown() override { release(); }

    void release() {
        if (!released_flag_) released_.set_value();
        released_flag_ = true;
    }

    metrics::Registry registry_;
    bool released_flag_ = false;
    std::promise<void> released_;
    std::shared_future<void> release_{released_.get_future().share()};
    std::unique_ptr<http::Server> server_;
    std::string base_;
    Received received_;
};

TEST_F(HttpClientTest, PostsBodyAndHeadersAndReturnsStatusAndBody) {
    auto res = post(base_ + "/hooks/a%20b?x=1", {{"Content-Type", "application/json"}},
                    R"({"k":1})", kGenerous);
    EXPECT_EQ(res.status, 202);
    EXPECT_EQ(res.body, "got 7");
    std::lock_guard lock{received_.mutex};
    EXPECT_EQ(received_.target, "/hooks/a%20b?x=1");
    EXPECT_EQ(received_.body, R"({"k":1})");
    EXPECT_EQ(received_.content_type, "application/json");
    EXPECT_EQ(received_.host, "127.0.0.1:" + std::to_string(server_->port()));
}

TEST_F(HttpClientTest, ReturnsErrorStatusesAsResponses) {
    auto res = post(base_ + "/fail", {}, "", kGenerous);
    EXPECT_EQ(res.status, 500);
    EXPECT_NE(res.body.find("nope"), std::string::npos);
    EXPECT_EQ(post(base_ + "/missing", {}, "", kGenerous).status, 404);
}

TEST_F(HttpClientTest, ServerThatDoesNotAnswerIsUnavailableAfterTheTimeout) {
    EXPECT_THROW(post(base_ + "/slow", {}, "", 200ms), Unavailable);
    release();
}

TEST_F(HttpClientTest, UnreachableServerIsUnavailable) {
    std::string closed = base_;
    server_->stop();
    EXPECT_THROW(post(closed + "/hooks/x", {}, "", kGenerous), Unavailable);
}

TEST(HttpClientUrl, RejectsWhatItCannotSend) {
    EXPECT_THROW(post("ftp://example.com/", {}, "", 1s), InvalidInput);
    EXPECT_THROW(post("not a url", {}, "", 1s), InvalidInput);
    EXPECT_THROW(post("http:///nohost", {}, "", 1s), InvalidInput);
    EXPECT_THROW(post("http://u:p@127.0.0.1/", {}, "", 1s), InvalidInput);
    EXPECT_THROW(post("http://127.0.0.1:1/", {{"X-Bad", "a\r\nInjected: 1"}}, "", 1s),
                 InvalidInput);
    EXPECT_THROW(post("http://127.0.0.1/" + std::string(9000, 'a'), {}, "", 1s), InvalidInput);
}

}  // namespace
}  // namespace ordo::platform::http_client
