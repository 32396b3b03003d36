// Fault: the command service with PostgreSQL stopped mid-load, SIGKILL and SIGTERM: no acknowledged
// command lost or doubled, a clean stop; and no start without tokens unless told so.

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <mutex>
#include <thread>

#include <pqxx/pqxx>

#include "tests/support/command_stack.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// Posts receipts, each under its own Idempotency-Key, from several threads until stopped,
// remembering the last status each key got (0: no answer at all).
class ReceiptLoad {
   public:
    ReceiptLoad(std::uint16_t port, int threads) {
        for (int t = 0; t < threads; ++t) {
            threads_.emplace_back([this, port, t] {
                HttpClient client{"127.0.0.1", port, 10s};
                for (int i = 0; !stop_; ++i) {
                    auto key = "k-" + std::to_string(t) + "-" + std::to_string(i);
                    int status = 0;
                    try {
                        status =
                            client
                                .post_json("/v1/inventory/sku-" + std::to_string(t) + "/receipts",
                                           {{"quantity", 1}}, {{"Idempotency-Key", key}})
                                .status;
                    } catch (const std::exception&) {
                        client.close();
                    }
                    std::lock_guard lock{mutex_};
                    sent_[key] = {t, status};
                    if (status == 200) ++ok_;
                    if (status == 503) ++unavailable_;
                }
            });
        }
    }
    ~ReceiptLoad() { stop(); }
    void stop() {
        stop_ = true;
        for (auto& t : threads_) {
            if (t.joinable()) t.join();
        }
    }
    int ok() const { return ok_; }
    int unavailable() const { return unavailable_; }
    // key -> (sku index, status)
    std::map<std::string, std::pair<int, int>> sent() {
        std::lock_guard lock{mutex_};
        return sent_;
    }

   private:
    std::atomic<bool> stop_{false};
    std::atomic<int> ok_{0};
    std::atomic<int> unavailable_{0};
    std::mutex mutex_;
    std::map<std::string, std::pair<int, int>> sent_;
    std::vector<std::thread> threads_;
};

// Every request is retried with its key until it succeeds; then each key must have taken
// effect exactly once: one event per key, acknowledged ones replayed unchanged.
void settle_and_check(std::uint16_t port, const std::string& store_url,
                      const std::map<std::string, std::pair<int, int>>& sent) {
    HttpClient client{"127.0.0.1", port, 10s};
    std::map<int, int> per_sku;
    for (const auto& [key, sku_status] : sent) {
        auto [sku, status] = sku_status;
        ++per_sku[sku];
        HttpResponse r;
        ASSERT_TRUE(eventually([&] {
            try {
                r = client.post_json("/v1/inventory/sku-" + std::to_string(sku) + "/receipts",
                                     {{"quantity", 1}}, {{"Idempotency-Key", key}});
            } catch (const std::exception&) {
                client.close();
                return false;
            }
            return r.status == 200;
        })) << key;
        if (status == 200) {
            EXPECT_EQ(r.header("idempotent-replayed"), "true")
                << "acknowledged " << key << " was lost";
        }
    }
    pqxx::connection conn{store_url};
    pqxx::nontransaction tx{conn};
    for (const auto& [sku, count] : per_sku) {
        auto row = tx.exec_params1(
            "SELECT count(*), coalesce(max(stream_version), 0), "
            "coalesce(sum((payload->>'quantity')::int), 0) FROM ordo.events WHERE stream_id = $1",
            "inventory-sku-" + std::to_string(sku));
        EXPECT_EQ(row[0].as<int>(), count) << "sku " << sku << ": one event per request";
        EXPECT_EQ(row[1].as<int>(), count) << "versions without gaps";
        EXPECT_EQ(row[2].as<int>(), count);
    }
    EXPECT_EQ(tx.exec1("SELECT count(*) FROM ordo.command_log")[0].as<std::size_t>(), sent.size());
}

TEST(CommandFaults, PostgresStoppedMidLoadAnswers503ThenRecoversWithNothingLostOrDoubled) {
    CommandStack stack;
    ReceiptLoad load{stack.port(), 4};
    ASSERT_TRUE(eventually([&] { return load.ok() >= 40; }));

    testing::stack("pg-stop");
    bool saw_503 = eventually([&] { return load.unavailable() > 0; });
    testing::stack("pg-start");
    ASSERT_TRUE(saw_503) << "requests while PostgreSQL was down must get 503";

    int ok_before = load.ok();
    ASSERT_TRUE(eventually([&] { return load.ok() >= ok_before + 40; }))
        << "the service recovers by itself when PostgreSQL returns";
    load.stop();
    settle_and_check(stack.port(), stack.database().command_url(), load.sent());
}

struct ServiceProcess {
    ServiceProcess(const TestDatabase& db, std::uint16_t port)
        : process{{ordo_binary(), "serve", "command", "--insecure-no-auth", "--address",
                   "127.0.0.1:" + std::to_string(port)},
                  {{"ORDO_COMMAND_DATABASE_URL", db.command_url()},
                   {"ORDO_NATS_URL", nats_admin_url()},
                   {"ORDO_NATS_CA_FILE", nats_ca_file()},
                   {"ORDO_LOG_LEVEL", "warn"}}} {
        HttpClient client{"127.0.0.1", port, 2s};
        ready = eventually([&] {
            try {
                return client.get("/healthz").status == 200;
            } catch (const std::exception&) {
                client.close();
                return false;
            }
        });
    }
    Process process;
    bool ready = false;
};

TEST(CommandFaults, Sigkill9OfTheServiceLosesNoAcknowledgedCommandAndDuplicatesNothing) {
    TestDatabase db;
    auto port = free_port();
    std::map<std::string, std::pair<int, int>> sent;
    {
        auto first = std::make_unique<ServiceProcess>(db, port);
        ASSERT_TRUE(first->ready);
        ReceiptLoad load{port, 4};
        ASSERT_TRUE(eventually([&] { return load.ok() >= 60; }));
        first->process.signal(SIGKILL);
        ASSERT_TRUE(first->process.wait(10s));
        load.stop();
        sent = load.sent();
    }
    ServiceProcess second{db, port};
    ASSERT_TRUE(second.ready);
    settle_and_check(port, db.command_url(), sent);
}

TEST(CommandFaults, SigtermStopsTheServiceCleanly) {
    TestDatabase db;
    auto port = free_port();
    ServiceProcess service{db, port};
    ASSERT_TRUE(service.ready);
    HttpClient client{"127.0.0.1", port};
    EXPECT_EQ(client.post_json("/v1/accounts/a-1/deposits", {{"amount", 5}}).status, 200);
    service.process.signal(SIGTERM);
    auto status = service.process.wait(30s);
    ASSERT_TRUE(status) << "the service did not stop after SIGTERM";
    EXPECT_EQ(*status, 0);
}

TEST(CommandFaults, RefusesToStartWithoutTokensUnlessToldToBeInsecure) {
    Process service{{ordo_binary(), "serve", "command", "--address",
                     "127.0.0.1:" + std::to_string(free_port())},
                    {{"ORDO_COMMAND_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none"},
                     {"ORDO_NATS_URL", "nats://127.0.0.1:1"},
                     {"ORDO_API_TOKENS", ""}}};
    auto status = service.wait(30s);
    ASSERT_TRUE(status);
    EXPECT_EQ(*status, 2);
}

}  // namespace
}  // namespace ordo::testing
