// Read-your-writes freshness: one client posts a receipt at a steady rate, takes the
// consistency token from the answer and reads the sku through the Query API with it until
// the read model shows the receipt; prints p50/p99/max of answered -> visible. Run through
// bench/freshness/run.sh, which starts the services and the background load.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

namespace {

namespace beast = boost::beast;
namespace http = beast::http;
using tcp = boost::asio::ip::tcp;
using Clock = std::chrono::steady_clock;

// One keep-alive HTTP/1.1 connection, reopened when the server closes it.
class Connection {
   public:
    Connection(std::string host, std::string port)
        : host_{std::move(host)}, port_{std::move(port)} {}

    http::response<http::string_body> send(
        http::verb verb, const std::string& target, const std::string& body,
        const std::vector<std::pair<std::string, std::string>>& headers = {}) {
        for (int attempt = 0;; ++attempt) {
            try {
                if (!stream_.socket().is_open()) {
                    tcp::resolver resolver{io_};
                    stream_.connect(resolver.resolve(host_, port_));
                }
                http::request<http::string_body> request{verb, target, 11};
                request.set(http::field::host, host_);
                request.keep_alive(true);
                for (const auto& [name, value] : headers) request.set(name, value);
                if (!body.empty()) {
                    request.set(http::field::content_type, "application/json");
                    request.body() = body;
                }
                request.prepare_payload();
                http::write(stream_, request);
                http::response<http::string_body> response;
                http::read(stream_, buffer_, response);
                if (!response.keep_alive()) stream_.close();
                return response;
            } catch (const std::exception&) {
                stream_.close();
                if (attempt > 0) throw;
            }
        }
    }

   private:
    std::string host_;
    std::string port_;
    boost::asio::io_context io_;
    beast::tcp_stream stream_{io_};
    beast::flat_buffer buffer_;
};

std::pair<std::string, std::string> host_port(const std::string& address) {
    const auto colon = address.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("not host:port: " + address);
    return {address.substr(0, colon), address.substr(colon + 1)};
}

int env_int(const char* name, int fallback) {
    const char* value = std::getenv(name);
    return value ? std::atoi(value) : fallback;
}

double percentile(std::vector<double> sorted, double q) {
    if (sorted.empty()) return 0;
    std::sort(sorted.begin(), sorted.end());
    const auto index = static_cast<std::size_t>(q * static_cast<double>(sorted.size() - 1) + 0.5);
    return sorted[std::min(index, sorted.size() - 1)];
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: freshness <command host:port> <query host:port>\n"
                     "  ORDO_BENCH_RATE commands/s (40), ORDO_BENCH_SECONDS (15),\n"
                     "  ORDO_BENCH_SKU_PREFIX (fresh)\n";
        return 2;
    }
    const int rate = std::max(1, env_int("ORDO_BENCH_RATE", 40));
    const int seconds = std::max(1, env_int("ORDO_BENCH_SECONDS", 15));
    const std::string prefix = std::getenv("ORDO_BENCH_SKU_PREFIX")
                                   ? std::getenv("ORDO_BENCH_SKU_PREFIX")
                                   : std::string{"fresh"};
    auto [command_host, command_port] = host_port(argv[1]);
    auto [query_host, query_port] = host_port(argv[2]);
    Connection commands{command_host, command_port};
    Connection reads{query_host, query_port};

    std::vector<double> visible_ms;
    std::vector<double> command_ms;
    int failed = 0;
    int lagging = 0;
    const auto period = std::chrono::microseconds(1'000'000 / rate);
    const auto end = Clock::now() + std::chrono::seconds(seconds);
    auto next = Clock::now();
    for (int i = 0; Clock::now() < end; ++i) {
        std::this_thread::sleep_until(next);
        next += period;
        const auto sku = prefix + "-" + std::to_string(i % 50);
        const auto sent = Clock::now();
        auto answer = commands.send(http::verb::post, "/v1/inventory/" + sku + "/receipts",
                                    R"({"quantity": 1})");
        const auto answered = Clock::now();
        if (answer.result_int() / 100 != 2) {
            ++failed;
            continue;
        }
        const auto token = nlohmann::json::parse(answer.body()).value("position", std::string{});
        bool visible = false;
        for (int attempt = 0; attempt < 10 && !visible; ++attempt) {
            auto read = reads.send(http::verb::get, "/v1/inventory/" + sku + "?wait_ms=5000", "",
                                   {{"X-Consistency-Token", token}});
            if (read.result_int() == 200) {
                visible = true;
            } else {
                ++lagging;
            }
        }
        if (!visible) {
            ++failed;
            continue;
        }
        const auto seen = Clock::now();
        command_ms.push_back(std::chrono::duration<double, std::milli>(answered - sent).count());
        visible_ms.push_back(std::chrono::duration<double, std::milli>(seen - answered).count());
    }
    // One line for the script: samples, answered->visible p50 p99 max, command p50 p99,
    // reads answered 503 (then retried), commands that failed or never became visible.
    std::printf("%zu %.1f %.1f %.1f %.1f %.1f %d %d\n", visible_ms.size(),
                percentile(visible_ms, 0.5), percentile(visible_ms, 0.99),
                percentile(visible_ms, 1.0), percentile(command_ms, 0.5),
                percentile(command_ms, 0.99), lagging, failed);
    return visible_ms.empty() ? 1 : 0;
}
