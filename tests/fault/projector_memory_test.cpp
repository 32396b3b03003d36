// Fault: a projector fed large orders stays under its documented memory bound, and every order
// reaches the read model whole.

#include <gtest/gtest.h>

#include <sys/types.h>

#include <algorithm>
#include <atomic>
#include <fstream>
#include <thread>

#include "platform/core/log.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// The bound docs/operations.md ("Memory") states for a projector with default settings.
constexpr std::size_t kProjectorRssBoundMiB = 128;
// Under AddressSanitizer a process's resident set is mostly shadow memory and the
// quarantine of freed blocks: the bound is checked in ordinary builds only.
#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAddressSanitizer = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
constexpr bool kAddressSanitizer = true;
#else
constexpr bool kAddressSanitizer = false;
#endif
#else
constexpr bool kAddressSanitizer = false;
#endif
constexpr int kOrders = 8000;
constexpr int kLines = 100;  // domain::orders::kMaxLines
constexpr int kLoaders = 4;

// VmRSS of a process in KiB; 0 once it is gone.
std::size_t resident_kib(pid_t pid) {
    std::ifstream status{"/proc/" + std::to_string(pid) + "/status"};
    std::string line;
    while (std::getline(status, line)) {
        if (line.rfind("VmRSS:", 0) == 0) return std::stoul(line.substr(6));
    }
    return 0;
}

// The highest resident set a process reaches while this object lives, sampled every 20 ms.
class PeakResidentSet {
   public:
    explicit PeakResidentSet(pid_t pid)
        : thread_{[this, pid] {
              while (!stop_) {
                  peak_kib_ = std::max(peak_kib_.load(), resident_kib(pid));
                  samples_.fetch_add(1);
                  std::this_thread::sleep_for(20ms);
              }
          }} {}
    ~PeakResidentSet() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    std::size_t peak_mib() const { return peak_kib_ / 1024; }
    int samples() const { return samples_; }

   private:
    std::atomic<bool> stop_{false};
    std::atomic<std::size_t> peak_kib_{0};
    std::atomic<int> samples_{0};
    std::thread thread_;
};

// The value of a sample in Prometheus text; -1 when absent.
double metric(const std::string& text, const std::string& sample) {
    const auto at = text.find("\n" + sample + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + 1 + sample.size() + 1));
}

bool healthy(std::uint16_t port) {
    HttpClient client{"127.0.0.1", port, 2s};
    return eventually([&] {
        try {
            return client.get("/healthz").status == 200;
        } catch (const std::exception&) {
            client.close();
            return false;
        }
    });
}

nlohmann::json order(int n) {
    nlohmann::json lines = nlohmann::json::array();
    for (int i = 0; i < kLines; ++i) {
        lines.push_back({{"sku", "sku-" + std::to_string(i)},
                         {"quantity", 1 + (n + i) % 5},
                         {"unit_price", 100 + i}});
    }
    return {{"order_id", "order-" + std::to_string(n)},
            {"customer_id", "customer-" + std::to_string(n % 50)},
            {"account_id", "account-" + std::to_string(n % 50)},
            {"lines", std::move(lines)}};
}

std::int64_t total_of(int n) {
    std::int64_t total = 0;
    for (int i = 0; i < kLines; ++i) total += (1 + (n + i) % 5) * (100 + i);
    return total;
}

// Many orders of 100 lines each, through the command service, the relay and JetStream, into
// a projector: its live buffer holds a bounded number of bytes whatever the load, so its
// resident set stays under the documented bound, and every order reaches the read model
// once, whole. (Before the bound, the buffer kept every event received up to 20,000 per
// partition, and this load alone took it past a gigabyte.)
TEST(ProjectorMemory, ResidentSetStaysBoundedUnderLargeOrdersAndReadModelsComplete) {
    TestDatabase db;
    const auto suffix = platform::new_uuid().substr(0, 8);
    const std::string stream = "M_" + suffix;
    const std::string prefix = "m" + suffix + ".events";
    const std::string nats_url = nats_admin_url();
    platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
    struct DeleteStream {
        platform::jetstream::Client& nats;
        std::string stream;
        ~DeleteStream() {
            try {
                nats.delete_stream(stream);
            } catch (const std::exception&) {
            }
        }
    } delete_stream{nats, stream};

    auto env = db.service_env();
    env.merge(std::map<std::string, std::string>{{"ORDO_NATS_URL", nats_url},
                                                 {"ORDO_NATS_CA_FILE", nats_ca_file()},
                                                 {"ORDO_NATS_STREAM", stream},
                                                 {"ORDO_NATS_SUBJECT_PREFIX", prefix},
                                                 {"ORDO_PARTITIONS", "4"},
                                                 {"ORDO_LOG_LEVEL", "warn"}});
    auto at = [](std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); };
    const auto command_port = free_port();
    const auto projector_port = free_port();
    Process command{
        {ordo_binary(), "serve", "command", "--insecure-no-auth", "--address", at(command_port)},
        env};
    Process relay{{ordo_binary(), "serve", "relay", "--address", at(free_port())}, env};
    Process projector{{ordo_binary(), "serve", "projector", "--address", at(projector_port)}, env};
    ASSERT_TRUE(healthy(command_port));
    ASSERT_TRUE(healthy(projector_port));

    PeakResidentSet peak{projector.pid()};
    std::atomic<int> next{0};
    std::atomic<int> failed{0};
    std::vector<std::thread> loaders;
    for (int t = 0; t < kLoaders; ++t) {
        loaders.emplace_back([&] {
            HttpClient client{"127.0.0.1", command_port, 60s};
            for (int n = next++; n < kOrders; n = next++) {
                try {
                    if (client.post_json("/v1/orders", order(n)).status != 202) ++failed;
                } catch (const std::exception&) {
                    client.close();
                    ++failed;
                }
            }
        });
    }
    for (auto& t : loaders) t.join();
    ASSERT_EQ(failed, 0);

    // Each read model moves on its own: the traces may still be a batch behind the orders.
    const auto traced = [&] {
        return scalar(db.migrator_url(),
                      "SELECT count(*) FROM read.trace_events WHERE event_type = 'OrderPlaced'");
    };
    ASSERT_TRUE(eventually(
        [&] {
            return scalar(db.migrator_url(), "SELECT count(*) FROM read.orders") == kOrders &&
                   traced() == kOrders;
        },
        600s, 200ms))
        << scalar(db.migrator_url(), "SELECT count(*) FROM read.orders") << " orders and "
        << traced() << " traced of " << kOrders;
    peak.stop();
    ASSERT_GT(peak.samples(), 10);
    if (!kAddressSanitizer) {
        EXPECT_LT(peak.peak_mib(), kProjectorRssBoundMiB)
            << "the projector's resident set passed the documented bound";
    }
    std::cout << "projector peak resident set: " << peak.peak_mib() << " MiB\n";

    // Complete and correct: every order once, with all its lines and its total.
    std::int64_t expected_total = 0;
    for (int n = 0; n < kOrders; ++n) expected_total += total_of(n);
    EXPECT_EQ(scalar(db.migrator_url(),
                     "SELECT count(*) FROM read.orders WHERE jsonb_array_length(lines) = 100 "
                     "AND status = 'pending'"),
              kOrders);
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT sum(total) FROM read.orders"), expected_total);
    EXPECT_EQ(traced(), kOrders);
    // The live path carried events (the buffer was in use, not bypassed).
    HttpClient metrics{"127.0.0.1", projector_port};
    const auto text = metrics.get("/metrics").body;
    EXPECT_NE(text.find("ordo_projection_live_buffer_bytes"), std::string::npos);
    EXPECT_GT(metric(text, "ordo_projection_events_applied_total{source=\"live\"}"), 0)
        << "no event came over the live path";
}

}  // namespace
}  // namespace ordo::testing
