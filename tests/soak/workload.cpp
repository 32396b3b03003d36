// The soak's clients (see workload.hpp).
#include "tests/soak/workload.hpp"

#include <algorithm>
#include <mutex>
#include <optional>
#include <random>
#include <set>
#include <thread>

#include "tests/support/http_client.hpp"

namespace ordo::soak {
namespace {

using namespace std::chrono_literals;

bool acknowledged(int status) {
    return status >= 200 && status < 300;
}

// An answer after which a real client would try again: the service said so (503), a
// gateway-ish failure, or nothing usable came back.
bool retryable(int status) {
    return status == 0 || status == 502 || status == 503 || status == 504;
}

class Client {
   public:
    Client(int index, const WorkloadOptions& options, const std::vector<std::uint16_t>& commands,
           const std::vector<std::uint16_t>& queries, const std::function<Millis()>& now,
           WorkloadResult& shared, std::mutex& mutex)
        : index_{index},
          options_{options},
          now_{now},
          shared_{shared},
          mutex_{mutex},
          random_{options.seed * 1'000'003 + static_cast<std::uint64_t>(index)} {
        for (auto port : commands) commands_.emplace_back("127.0.0.1", port, 5s);
        for (auto port : queries) queries_.emplace_back("127.0.0.1", port, 15s);
        prefer_ = static_cast<std::size_t>(index) % commands_.size();
    }

    void run() {
        const auto interval = Millis{
            static_cast<std::int64_t>(1000.0 * options_.clients / std::max(options_.rate, 0.001))};
        Millis next = now_();
        for (int n = 0; now_() < options_.duration; ++n) {
            next += interval;
            step(n);
            const auto wait = next - now_();
            if (wait > 0ms) std::this_thread::sleep_for(wait);
        }
        std::lock_guard lock{mutex_};
        for (auto& c : done_) shared_.commands.push_back(std::move(c));
        for (auto& o : outages_) shared_.outages.push_back(o);
        for (auto& f : failed_) shared_.failed_attempts.push_back(f);
        for (auto& u : unexpected_) shared_.unexpected.push_back(std::move(u));
        shared_.reads += reads_;
        shared_.reads_lagging += lagging_;
        shared_.reads_failed += read_failures_;
    }

   private:
    int pick(int low, int high) { return std::uniform_int_distribution<int>{low, high}(random_); }
    std::string id(int n) const {
        return "soak-" + std::to_string(options_.seed) + "-" + std::to_string(index_) + "-" +
               std::to_string(n);
    }

    void step(int n) {
        const int roll = pick(0, 99);
        if (roll < 20) {
            const auto sku = "sku-" + std::to_string(pick(0, options_.skus - 1));
            send({"receipt",
                  id(n),
                  "/v1/inventory/" + sku + "/receipts",
                  {{"quantity", pick(1, 20)}}});
        } else if (roll < 35) {
            const auto account = "acct-" + std::to_string(pick(0, options_.accounts - 1));
            send({"deposit",
                  id(n),
                  "/v1/accounts/" + account + "/deposits",
                  {{"amount", pick(100, 5000)}}});
        } else if (roll < 70 || (roll < 80 && orders_.empty())) {
            nlohmann::json lines = nlohmann::json::array();
            std::set<int> skus;
            const int count = pick(1, 5);
            while (static_cast<int>(skus.size()) < std::min(count, options_.skus)) {
                skus.insert(pick(0, options_.skus - 1));
            }
            for (int s : skus) {
                lines.push_back({{"sku", "sku-" + std::to_string(s)},
                                 {"quantity", pick(1, 5)},
                                 {"unit_price", pick(1, 100)}});
            }
            const auto order_id = id(n);
            const auto account = "acct-" + std::to_string(pick(0, options_.accounts - 1));
            if (send({"order",
                      order_id,
                      "/v1/orders",
                      {{"order_id", order_id},
                       {"customer_id", "cust-" + std::to_string(index_)},
                       {"account_id", account},
                       {"lines", lines}}})) {
                orders_.push_back(order_id);
            }
        } else if (roll < 80) {
            const auto& order_id =
                orders_[static_cast<std::size_t>(pick(0, static_cast<int>(orders_.size()) - 1))];
            send({"cancel", id(n), "/v1/orders/" + order_id + "/cancel", {{"reason", "soak"}}});
        } else {
            read();
        }
    }

    // Sends until answered for good or given up; true when acknowledged.
    bool send(CommandRecord c) {
        c.first_sent = now_();
        std::optional<Millis> outage;
        for (int attempt = 0;; ++attempt) {
            auto& target =
                commands_[(prefer_ + static_cast<std::size_t>(attempt)) % commands_.size()];
            int status = 0;
            testing::HttpResponse answer;
            try {
                answer = target.post_json(c.path, c.body, {{"Idempotency-Key", c.key}});
                status = answer.status;
            } catch (const std::exception&) {
                target.close();  // a timeout or a refused connection: nothing usable came back
            }
            ++c.attempts;
            if (!retryable(status)) {
                if (outage) outages_.push_back({*outage, now_()});
                c.status = status;
                c.ended = now_();
                try {
                    c.answer = answer.json();
                } catch (const std::exception&) {
                    c.answer = answer.body;
                }
                const bool refused_cancel = c.kind == "cancel" && status == 409;
                if (!acknowledged(status) && !refused_cancel) {
                    unexpected_.push_back(c.kind + " " + c.key + " answered " +
                                          std::to_string(status) + ": " + answer.body);
                }
                if (acknowledged(status)) {
                    if (auto it = c.answer.find("position");
                        it != c.answer.end() && it->is_string())
                        token_ = it->get<std::string>();
                }
                const bool ok = acknowledged(status);
                done_.push_back(std::move(c));
                return ok;
            }
            failed_.push_back({now_(), status});
            if (!outage) outage = now_();
            if (now_() - c.first_sent > options_.give_up) {
                outages_.push_back({*outage, now_()});
                c.status = 0;
                c.ended = now_();
                done_.push_back(std::move(c));
                return false;
            }
            std::this_thread::sleep_for(
                std::min<Millis>(2000ms, Millis{50 << std::min(attempt, 5)}));
        }
    }

    // A read of a sku with the client's last consistency token, as a client that wants to
    // see its own writes does.
    void read() {
        ++reads_;
        auto& target = queries_[static_cast<std::size_t>(pick(0, 1)) % queries_.size()];
        testing::HttpHeaders headers;
        if (!token_.empty()) headers.emplace_back("X-Consistency-Token", token_);
        try {
            auto r = target.get(
                "/v1/inventory/sku-" + std::to_string(pick(0, options_.skus - 1)) + "?wait_ms=5000",
                headers);
            if (r.status == 503) {
                ++lagging_;
            } else if (r.status != 200 && r.status != 404) {
                ++read_failures_;
                if (r.status >= 500 || r.status == 400)
                    unexpected_.push_back("read answered " + std::to_string(r.status) + ": " +
                                          r.body);
            }
        } catch (const std::exception&) {
            ++read_failures_;
            target.close();
        }
    }

    int index_;
    const WorkloadOptions& options_;
    const std::function<Millis()>& now_;
    WorkloadResult& shared_;
    std::mutex& mutex_;
    std::mt19937_64 random_;
    std::vector<testing::HttpClient> commands_, queries_;
    std::size_t prefer_ = 0;
    std::vector<std::string> orders_;
    std::string token_;
    std::vector<CommandRecord> done_;
    std::vector<Outage> outages_;
    std::vector<FailedAttempt> failed_;
    std::vector<std::string> unexpected_;
    std::int64_t reads_ = 0, lagging_ = 0, read_failures_ = 0;
};

}  // namespace

WorkloadResult run_workload(const WorkloadOptions& options,
                            const std::vector<std::uint16_t>& command_ports,
                            const std::vector<std::uint16_t>& query_ports,
                            const std::function<Millis()>& now) {
    WorkloadResult result;
    std::mutex mutex;
    std::vector<std::thread> threads;
    for (int i = 0; i < options.clients; ++i) {
        threads.emplace_back(
            [&, i] { Client{i, options, command_ports, query_ports, now, result, mutex}.run(); });
    }
    for (auto& t : threads) t.join();
    result.load_time = now();
    return result;
}

}  // namespace ordo::soak
