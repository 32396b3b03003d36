// Requests answered later (Response::later): the worker is free while a request is parked,
// the answer comes from any thread, and a parked request is always answered or cut, never
// left hanging or answered twice.

#include <algorithm>
#include <chrono>
#include <future>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http.hpp"
#include "platform/http/http_server.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"

namespace ordo::platform::http {
namespace {

using namespace std::chrono_literals;
using ordo::testing::eventually;
using ordo::testing::HttpClient;
using ordo::testing::HttpResponse;

// Holds the Resumes of parked requests until the test lets them go.
class Parked {
   public:
    void add(Resume r) {
        std::lock_guard lock{mutex_};
        resumes_.push_back(std::move(r));
    }
    std::size_t size() {
        std::lock_guard lock{mutex_};
        return resumes_.size();
    }
    std::vector<Resume> take() {
        std::lock_guard lock{mutex_};
        return std::move(resumes_);
    }

   private:
    std::mutex mutex_;
    std::vector<Resume> resumes_;
};

struct ParkServer {
    explicit ParkServer(std::size_t workers = 1) {
        Router router;
        router.add("GET", "/park", Access::open, [this](Request&) {
            return Response::later([this](Resume r) { parked.add(std::move(r)); });
        });
        router.add("GET", "/drop", Access::open,
                   [](Request&) { return Response::later([](const Resume&) {}); });
        router.add("GET", "/now", Access::open, [](Request&) {
            return Response::json(200, {{"now", true}});
        });
        ServerOptions options;
        options.worker_threads = workers;
        server =
            std::make_unique<Server>(options, std::move(router), Logger::null_logger(), registry);
        server->start();
    }
    HttpClient client() const { return HttpClient{"127.0.0.1", server->port()}; }
    std::future<HttpResponse> get_async(const std::string& path) const {
        return std::async(std::launch::async,
                          [c = client(), path]() mutable { return c.get(path); });
    }

    Parked parked;
    metrics::Registry registry;
    std::unique_ptr<Server> server;
};

TEST(HttpPark, ParkedRequestsHoldNoWorkerAndAreAnsweredFromAnyThread) {
    ParkServer s{1};  // one worker: a parked request that held it would block /now
    std::vector<std::future<HttpResponse>> pending;
    for (int i = 0; i < 5; ++i) pending.push_back(s.get_async("/park"));
    ASSERT_TRUE(eventually([&] { return s.parked.size() == 5; }, 20s));
    EXPECT_EQ(s.client().get("/now").status, 200);
    std::thread other{[&] {
        int n = 0;
        for (auto& r : s.parked.take()) {
            r->resume([n = n++] { return Response::json(200, {{"n", n}}); });
        }
    }};
    other.join();
    std::vector<int> seen;
    for (auto& p : pending) {
        auto res = p.get();
        ASSERT_EQ(res.status, 200);
        seen.push_back(nlohmann::json::parse(res.body).at("n").get<int>());
    }
    std::sort(seen.begin(), seen.end());
    EXPECT_EQ(seen, (std::vector<int>{0, 1, 2, 3, 4}));
}

TEST(HttpPark, ASecondResumeIsIgnored) {
    ParkServer s;
    auto pending = std::async(std::launch::async, [c = s.client()]() mutable {
        auto res = c.get("/park");
        return std::make_pair(std::move(c), std::move(res));
    });
    ASSERT_TRUE(eventually([&] { return s.parked.size() == 1; }, 20s));
    auto r = s.parked.take().front();
    r->resume([] { return Response::json(200, {{"first", true}}); });
    r->resume([] { return Response::json(201, {{"second", true}}); });
    auto [client, res] = pending.get();
    EXPECT_EQ(res.status, 200);
    // The same connection carries the next request and its own answer, not a second one.
    auto next = client.get("/now");
    EXPECT_EQ(next.status, 200);
    EXPECT_EQ(nlohmann::json::parse(next.body).value("now", false), true);
}

TEST(HttpPark, ARequestNeverResumedIsAnswered500) {
    ParkServer s;
    auto res = s.client().get("/drop");
    EXPECT_EQ(res.status, 500);
    EXPECT_NE(res.body.find("internal"), std::string::npos);
}

TEST(HttpPark, AnAnswerThatThrowsIsA500) {
    ParkServer s;
    auto pending = s.get_async("/park");
    ASSERT_TRUE(eventually([&] { return s.parked.size() == 1; }, 20s));
    s.parked.take().front()->resume([]() -> Response { throw std::runtime_error("boom"); });
    EXPECT_EQ(pending.get().status, 500);
}

TEST(HttpPark, StoppingCutsParkedRequestsAndLaterResumesDoNothing) {
    auto s = std::make_unique<ParkServer>();
    auto pending = s->get_async("/park");
    ASSERT_TRUE(eventually([&] { return s->parked.size() == 1; }, 20s));
    auto second = s->get_async("/park");
    ASSERT_TRUE(eventually([&] { return s->parked.size() == 2; }, 20s));
    auto parked = s->parked.take();
    s->server->stop(200ms);
    // The clients learn their connections are gone rather than waiting forever, and the
    // requests cut are no longer counted in flight.
    EXPECT_THROW(pending.get(), std::runtime_error);
    EXPECT_THROW(second.get(), std::runtime_error);
    EXPECT_EQ(
        s->registry.gauge("ordo_http_requests_in_flight", "", {{"component", "http"}}).value(), 0);
    parked[0]->resume([] { return Response::json(200, {}); });  // after stop: nothing happens
    s.reset();
    parked.clear();  // the last references, one never resumed, outlive the server: harmless
}

}  // namespace
}  // namespace ordo::platform::http
