#include "app/host.hpp"

#include <thread>

#include <unistd.h>

#include <charconv>
#include <cstdlib>

#include <nlohmann/json.hpp>

namespace ordo::app {

StopSignals::StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

bool StopSignals::wait_for(std::chrono::seconds tick) {
    timespec timeout{static_cast<time_t>(tick.count()), 0};
    int sig = sigtimedwait(&set_, nullptr, &timeout);
    return sig == SIGINT || sig == SIGTERM;
}

void StopSignals::wait() {
    while (!wait_for(std::chrono::seconds(60))) {
    }
}

std::optional<std::pair<std::string, std::uint16_t>> parse_address(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    std::uint16_t port = 0;
    const char* first = address.data() + colon + 1;
    const char* last = address.data() + address.size();
    auto [end, ec] = std::from_chars(first, last, port);
    if (ec != std::errc{} || end != last || first == last) return std::nullopt;
    return std::pair{address.substr(0, colon), port};
}

std::optional<std::vector<std::string>> api_tokens(const std::string& list, bool insecure_no_auth,
                                                   const platform::Logger& log) {
    std::vector<std::string> tokens;
    std::size_t start = 0;
    while (start <= list.size()) {
        auto comma = list.find(',', start);
        auto token =
            list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!token.empty()) tokens.push_back(token);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    if (tokens.empty() && !insecure_no_auth) {
        log.error(
            "refusing to start without API tokens: set ORDO_API_TOKENS, or pass "
            "--insecure-no-auth to serve /v1 routes to anyone");
        return std::nullopt;
    }
    if (tokens.empty()) log.warn("serving /v1 routes without authentication (--insecure-no-auth)");
    return tokens;
}

std::unique_ptr<platform::http::Server> start_server(const std::string& address,
                                                     platform::http::ServerOptions options,
                                                     platform::http::Router router,
                                                     const platform::Logger& log,
                                                     platform::metrics::Registry& registry) {
    auto parsed = parse_address(address);
    if (!parsed) {
        log.error("the address must be host:port", {{"address", address}});
        return nullptr;
    }
    options.address = parsed->first;
    options.port = parsed->second;
    auto server =
        std::make_unique<platform::http::Server>(options, std::move(router), log, registry);
    try {
        server->start();
    } catch (const std::exception& e) {
        log.error("cannot listen", {{"address", address}, {"error", e.what()}});
        return nullptr;
    }
    return server;
}

std::unique_ptr<platform::otlp::Exporter> span_exporter(const std::string& service,
                                                        const platform::Logger& log,
                                                        platform::metrics::Registry& registry) {
    static const platform::SystemClock clock;
    auto env = [](const char* name) {
        const char* value = std::getenv(name);
        return std::string{value ? value : ""};
    };
    std::string url = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if (url.empty()) {
        auto endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (endpoint.empty()) return nullptr;
        url = platform::otlp::traces_url(endpoint);
    }
    std::string name = env("OTEL_SERVICE_NAME");
    if (name.empty()) name = service;
    log.info("exporting spans", {{"url", url}, {"service_name", name}});
    return std::make_unique<platform::otlp::Exporter>(
        platform::otlp::ExporterOptions{.url = url, .service_name = name},
        log.with_component("otlp"), registry, clock);
}

std::string instance_name() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return std::string{host} + ":" + std::to_string(::getpid());
}

int run_until_stopped(StopSignals& signals, platform::http::Server& server,
                      const std::vector<Loop>& loops, const platform::Logger& log) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (const auto& loop : loops) threads.emplace_back([&stop, &loop] { loop(stop); });
    signals.wait();
    log.info("stopping");
    stop = true;
    for (auto& t : threads) t.join();
    server.stop(std::chrono::seconds(5));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
