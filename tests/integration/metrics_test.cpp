// Every `ordo serve` process's /metrics passes promtool, and together they expose the families
// the dashboards and alert rules read.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/core/trace.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

bool have_promtool() {
    return run({"/bin/sh", "-c", "command -v promtool >/dev/null 2>&1"}) == 0;
}

// Metric family names in a Prometheus text exposition.
std::set<std::string> families(const std::string& text) {
    std::set<std::string> out;
    std::istringstream lines{text};
    for (std::string line; std::getline(lines, line);) {
        if (line.rfind("# TYPE ", 0) == 0) out.insert(line.substr(7, line.find(' ', 7) - 7));
    }
    return out;
}

// Every `ordo serve` process answers /metrics with text that promtool accepts, and together
// they expose the families the dashboards and alert rules read.
TEST(Metrics, EveryProcessPassesPromtoolCheckMetrics) {
    if (!have_promtool())
        GTEST_SKIP() << "promtool is not installed (deploy/install.sh installs it)";
    TestDatabase db;
    const auto suffix = platform::new_uuid().substr(0, 8);
    auto env = db.service_env();
    env.merge(
        std::map<std::string, std::string>{{"ORDO_NATS_URL", nats_admin_url()},
                                           {"ORDO_NATS_CA_FILE", nats_ca_file()},
                                           {"ORDO_PARTITIONS", "4"},
                                           {"ORDO_NATS_STREAM", "MT_" + suffix},
                                           {"ORDO_NATS_SUBJECT_PREFIX", "mt" + suffix + ".events"},
                                           {"ORDO_BREAKER_BUCKET", ""},
                                           {"ORDO_LOG_LEVEL", "warn"}});
    std::map<std::string, std::uint16_t> ports;
    std::vector<std::unique_ptr<Process>> processes;
    for (const char* service : {"command", "query", "relay", "projector", "sagas"}) {
        ports[service] = free_port();
        std::vector<std::string> argv{ordo_binary(), "serve", service, "--address",
                                      "127.0.0.1:" + std::to_string(ports[service])};
        if (std::string{service} == "command" || std::string{service} == "query") {
            argv.push_back("--insecure-no-auth");
        }
        processes.push_back(std::make_unique<Process>(argv, env));
    }
    auto scrape = [&](const std::string& service) -> std::optional<HttpResponse> {
        try {
            HttpClient client{"127.0.0.1", ports[service], 5s};
            return client.get("/metrics");
        } catch (const std::exception&) {
            return std::nullopt;
        }
    };
    for (const auto& [service, port] : ports) {
        ASSERT_TRUE(eventually([&] { return scrape(service).has_value(); }, 60s))
            << service << " did not come up";
    }
    // Some traffic, so that request histograms and command counters have series.
    HttpClient commands{"127.0.0.1", ports["command"]};
    auto receipt = commands.post_json("/v1/inventory/sku-m/receipts", {{"quantity", 1}});
    ASSERT_EQ(receipt.status, 200);
    EXPECT_EQ(commands.post_json("/v1/inventory/sku-m/receipts", {{"quantity", 0}}).status, 422);
    HttpClient queries{"127.0.0.1", ports["query"]};
    EXPECT_EQ(queries.get("/v1/inventory/nothing-here").status, 404);
    // A read with the receipt's consistency token: the receipt then has gone through every
    // hop up to the query service, and each service has observed its own.
    const auto token = nlohmann::json::parse(receipt.body).at("position").get<std::string>();
    EXPECT_EQ(
        queries.get("/v1/inventory/sku-m?wait_ms=30000", {{"X-Consistency-Token", token}}).status,
        200);
    for (const auto& [service, hop] : std::vector<std::pair<std::string, std::string>>{
             {"relay", "hop=\"relay_read\""},
             {"relay", "hop=\"relay_acked\""},
             {"projector", "hop=\"projector_committed\",projection=\"inventory\""},
             {"query", "hop=\"query_token_wait\""}}) {
        EXPECT_TRUE(eventually(
            [&, &service = service, &hop = hop] {
                auto res = scrape(service);
                if (!res) return false;
                const auto at = res->body.find("ordo_hop_seconds_count{" + hop);
                if (at == std::string::npos) return false;
                const auto end = res->body.find('\n', at);
                const auto space = res->body.rfind(' ', end);
                return std::stod(res->body.substr(space + 1, end - space - 1)) >= 1;
            },
            30s))
            << service << " observed no " << hop;
    }

    std::set<std::string> all;
    const auto dir = std::filesystem::temp_directory_path() / ("ordo-metrics-" + suffix);
    std::filesystem::create_directories(dir);
    for (const auto& [service, port] : ports) {
        auto res = scrape(service);
        ASSERT_TRUE(res) << service;
        ASSERT_EQ(res->status, 200) << service;
        EXPECT_EQ(res->header("content-type").rfind("text/plain; version=0.0.4", 0), 0u);
        auto file = (dir / (service + ".prom")).string();
        std::ofstream{file} << res->body;
        auto report = (dir / (service + ".out")).string();
        int rc = run(
            {"/bin/sh", "-c", "promtool check metrics < '" + file + "' > '" + report + "' 2>&1"});
        std::ifstream in{report};
        std::string problems{std::istreambuf_iterator<char>{in}, {}};
        EXPECT_EQ(rc, 0) << service << ": promtool check metrics:\n" << problems;
        EXPECT_EQ(problems, "") << service;
        for (const auto& f : families(res->body)) all.insert(f);
        for (const char* each :
             {"ordo_http_request_duration_seconds", "ordo_http_requests_in_flight",
              "ordo_db_pool_in_use", "ordo_nats_reconnects_total"}) {
            EXPECT_TRUE(families(res->body).count(each)) << service << " lacks " << each;
        }
    }
    std::filesystem::remove_all(dir);
    for (const char* family :
         {"ordo_command_appends_total", "ordo_command_conflicts_total", "ordo_relay_lag_events",
          "ordo_relay_lag_seconds", "ordo_relay_published_total", "ordo_projection_lag_events",
          "ordo_projection_lag_seconds", "ordo_sagas_started_total", "ordo_http_rejected_total",
          "ordo_hop_seconds"}) {
        EXPECT_TRUE(all.count(family)) << "no process exposes " << family;
    }
    for (auto& p : processes) p->signal(SIGTERM);
    for (auto& p : processes) p->wait(15s);
}

}  // namespace
}  // namespace ordo::testing
