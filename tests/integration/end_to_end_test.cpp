// End to end: a write is visible to a read with its consistency token; a token from the future
// waits, then answers that the projection lags.

#include <gtest/gtest.h>

#include <thread>

#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// `ordo serve command`, `projector` and `query` as real processes over one test database.
class Services {
   public:
    Services() : command_port_{free_port()}, query_port_{free_port()} {
        auto env = db_.service_env();
        env.merge(std::map<std::string, std::string>{{"ORDO_NATS_URL", nats_admin_url()},
                                                     {"ORDO_NATS_CA_FILE", nats_ca_file()},
                                                     {"ORDO_PARTITIONS", "4"},
                                                     {"ORDO_LOG_LEVEL", "warn"}});
        auto at = [](std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); };
        command_ = std::make_unique<Process>(
            std::vector<std::string>{ordo_binary(), "serve", "command", "--insecure-no-auth",
                                     "--address", at(command_port_)},
            env);
        projector_ =
            std::make_unique<Process>(std::vector<std::string>{ordo_binary(), "serve", "projector",
                                                               "--address", at(free_port())},
                                      env);
        query_ = std::make_unique<Process>(
            std::vector<std::string>{ordo_binary(), "serve", "query", "--insecure-no-auth",
                                     "--address", at(query_port_)},
            env);
        for (auto port : {command_port_, query_port_}) {
            HttpClient client{"127.0.0.1", port, 2s};
            auto deadline = std::chrono::steady_clock::now() + 60s;
            for (;;) {
                try {
                    if (client.get("/healthz").status == 200) break;
                } catch (const std::exception&) {
                    client.close();
                }
                if (std::chrono::steady_clock::now() > deadline) {
                    throw std::runtime_error("a service did not come up");
                }
                std::this_thread::sleep_for(20ms);
            }
        }
    }
    HttpClient commands() const { return HttpClient{"127.0.0.1", command_port_}; }
    HttpClient queries() const { return HttpClient{"127.0.0.1", query_port_}; }

   private:
    TestDatabase db_;
    std::uint16_t command_port_, query_port_;
    std::unique_ptr<Process> command_, projector_, query_;
};

TEST(EndToEnd, AWriteIsVisibleToAReadWithItsConsistencyToken) {
    Services services;
    auto commands = services.commands();
    auto queries = services.queries();
    for (int i = 1; i <= 5; ++i) {
        auto posted = commands.post_json("/v1/inventory/sku-e2e/receipts", {{"quantity", i}});
        ASSERT_EQ(posted.status, 200) << posted.body;
        auto token = posted.json()["position"].get<std::string>();
        // No waiting in the test: the token makes the query wait for the projection.
        auto read =
            queries.get("/v1/inventory/sku-e2e?wait_ms=10000", {{"X-Consistency-Token", token}});
        ASSERT_EQ(read.status, 200) << read.body;
        EXPECT_EQ(read.json()["on_hand"], i * (i + 1) / 2);
    }

    ASSERT_EQ(commands.post_json("/v1/accounts/acc-e2e/deposits", {{"amount", 500}}).status, 200);
    auto order = commands.post_json(
        "/v1/orders", {{"order_id", "o-e2e"},
                       {"customer_id", "c-e2e"},
                       {"account_id", "acc-e2e"},
                       {"lines", {{{"sku", "sku-e2e"}, {"quantity", 2}, {"unit_price", 30}}}}});
    ASSERT_EQ(order.status, 202);
    auto read = queries.get("/v1/orders/o-e2e?wait_ms=10000",
                            {{"X-Consistency-Token", order.json()["position"].get<std::string>()}});
    ASSERT_EQ(read.status, 200) << read.body;
    EXPECT_EQ(read.json()["status"], "pending");
    EXPECT_EQ(read.json()["total"], 60);
    auto list = queries.get("/v1/orders?customer_id=c-e2e&wait_ms=10000",
                            {{"X-Consistency-Token", order.json()["position"].get<std::string>()}});
    ASSERT_EQ(list.status, 200) << list.body;
    EXPECT_EQ(list.json()["items"].size(), 1u);
}

TEST(EndToEnd, ATokenFromTheFutureWaitsThenAnswersProjectionLagging) {
    Services services;
    auto queries = services.queries();
    auto read = queries.get("/v1/inventory/sku-none?wait_ms=300",
                            {{"X-Consistency-Token", "999999999999.1"}});
    EXPECT_EQ(read.status, 503);
    EXPECT_EQ(read.json()["type"], "projection_lagging");
    EXPECT_FALSE(read.header("retry-after").empty());
}

}  // namespace
}  // namespace ordo::testing
