#include <signal.h>

#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "command/executor.hpp"
#include "command/service.hpp"
#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/http_server.hpp"
#include "platform/metrics.hpp"
#include "platform/nats.hpp"
#include "platform/pg.hpp"
#include "platform/service_routes.hpp"

namespace ordo::app {
namespace {

std::pair<std::string, std::uint16_t> split_address(const std::string& addr) {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) throw std::invalid_argument("address must be host:port: " + addr);
    return {addr.substr(0, colon), static_cast<std::uint16_t>(std::stoi(addr.substr(colon + 1)))};
}

std::vector<std::string> split_tokens(const std::string& list) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= list.size()) {
        auto comma = list.find(',', start);
        auto token = list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!token.empty()) out.push_back(token);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

}  // namespace

int run_serve(const ServeOptions& options, const platform::Logger& log) {
    auto tokens = split_tokens(options.api_tokens);
    if (tokens.empty() && !options.insecure_no_auth) {
        log.error("refusing to start without API tokens: set ORDO_API_TOKENS, or pass "
                  "--insecure-no-auth to serve /v1 routes to anyone");
        return 2;
    }
    if (tokens.empty()) log.warn("serving /v1 routes without authentication (--insecure-no-auth)");

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    platform::metrics::Registry registry;
    platform::pg::Pool pool{{.url = options.database_url,
                             .size = options.pool_size,
                             .name = options.component,
                             .preparers = {&eventstore::EventStore::prepare}}};
    pool.register_metrics(registry);
    platform::nats::Connection nats{options.nats_url, log.with_component("nats")};
    eventstore::AppendNotifier notifier{options.database_url, log.with_component("notifier")};
    command::Executor executor{pool, &notifier, registry, log, {}};
    command::CommandService service{executor, log};

    platform::http::Router router;
    service.register_routes(router);
    platform::add_service_routes(router, registry, pool, nats);

    auto [host, port] = split_address(options.address);
    platform::http::ServerOptions server_options;
    server_options.address = host;
    server_options.port = port;
    server_options.api_tokens = tokens;
    server_options.worker_threads = options.pool_size;
    server_options.component = options.component;
    platform::http::Server server{server_options, std::move(router), log, registry};
    try {
        server.start();
    } catch (const std::exception& e) {
        log.error("cannot listen", {{"address", options.address}, {"error", e.what()}});
        return 1;
    }
    log.info("command service listening", {{"address", host + ":" + std::to_string(server.port())}});

    auto next_expiry = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    for (;;) {
        timespec tick{1, 0};
        int sig = sigtimedwait(&stop_signals, nullptr, &tick);
        if (sig == SIGINT || sig == SIGTERM) break;
        if (std::chrono::steady_clock::now() >= next_expiry) {
            next_expiry += std::chrono::hours(1);
            try {
                // Idempotency keys are promised for at least 24 hours; keep them for 48.
                executor.expire(std::chrono::hours(48));
            } catch (const std::exception& e) {
                log.warn("could not expire old idempotency keys", {{"error", e.what()}});
            }
        }
    }
    log.info("draining requests in flight");
    server.stop(std::chrono::seconds(10));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
