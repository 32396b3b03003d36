#include <signal.h>

#include <charconv>

#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "platform/http_server.hpp"
#include "platform/metrics.hpp"
#include "platform/nats.hpp"
#include "platform/pg.hpp"
#include "platform/service_routes.hpp"
#include "query/service.hpp"

namespace ordo::app {
namespace {

std::optional<std::pair<std::string, std::uint16_t>> parse_address(const std::string& addr) {
    auto colon = addr.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    std::uint16_t port = 0;
    const char* first = addr.data() + colon + 1;
    const char* last = addr.data() + addr.size();
    auto [end, ec] = std::from_chars(first, last, port);
    if (ec != std::errc{} || end != last || first == last) return std::nullopt;
    return std::pair{addr.substr(0, colon), port};
}

std::vector<std::string> split_tokens(const std::string& list) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= list.size()) {
        auto comma = list.find(',', start);
        auto token =
            list.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!token.empty()) out.push_back(token);
        if (comma == std::string::npos) break;
        start = comma + 1;
    }
    return out;
}

}  // namespace

// `ordo serve query`: the Query API on the reader role. `options.database_url` must be the
// reader's (ORDO_READER_URL): the service needs nothing else, and a bug in it can then
// neither write nor read the event store.
int run_query(const ServeOptions& options, int partitions, const platform::Logger& log) {
    auto tokens = split_tokens(options.api_tokens);
    if (tokens.empty() && !options.insecure_no_auth) {
        log.error(
            "refusing to start without API tokens: set ORDO_API_TOKENS, or pass "
            "--insecure-no-auth to serve /v1 routes to anyone");
        return 2;
    }
    if (tokens.empty()) log.warn("serving /v1 routes without authentication (--insecure-no-auth)");
    auto address = parse_address(options.address);
    if (!address) {
        log.error("the address must be host:port", {{"address", options.address}});
        return 2;
    }

    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    platform::metrics::Registry registry;
    platform::pg::Pool pool{{.url = options.database_url,
                             .size = options.pool_size,
                             .name = options.component,
                             .preparers = {&query::QueryService::prepare}}};
    pool.register_metrics(registry);
    platform::nats::Connection nats{options.nats_url, log.with_component("nats")};
    query::QueryService service{pool, partitions, log};

    platform::http::Router router;
    service.register_routes(router);
    platform::add_service_routes(router, registry, pool, nats);

    platform::http::ServerOptions server_options;
    server_options.address = address->first;
    server_options.port = address->second;
    server_options.api_tokens = tokens;
    // A request waiting on X-Consistency-Token sleeps on its worker without a connection,
    // so there are more workers than connections.
    server_options.worker_threads = options.pool_size * 4;
    server_options.component = options.component;
    platform::http::Server server{server_options, std::move(router), log, registry};
    try {
        server.start();
    } catch (const std::exception& e) {
        log.error("cannot listen", {{"address", options.address}, {"error", e.what()}});
        return 1;
    }
    log.info("query service listening",
             {{"address", address->first + ":" + std::to_string(server.port())},
              {"partitions", partitions}});

    for (;;) {
        int sig = sigwaitinfo(&stop_signals, nullptr);
        if (sig == SIGINT || sig == SIGTERM) break;
    }
    log.info("draining requests in flight");
    server.stop(std::chrono::seconds(10));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
