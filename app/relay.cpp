#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "eventstore/relay.hpp"
#include "platform/http_server.hpp"
#include "platform/jetstream.hpp"
#include "platform/metrics.hpp"
#include "platform/nats.hpp"
#include "platform/pg.hpp"
#include "platform/service_routes.hpp"

namespace ordo::app {
namespace {

std::string instance_name() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return std::string{host} + ":" + std::to_string(::getpid());
}

}  // namespace

int run_relay(const RelayServeOptions& options, const platform::Logger& log) {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    auto colon = options.address.rfind(':');
    if (colon == std::string::npos) {
        log.error("address must be host:port", {{"address", options.address}});
        return 2;
    }
    auto host = options.address.substr(0, colon);
    auto port = static_cast<std::uint16_t>(std::stoi(options.address.substr(colon + 1)));

    platform::metrics::Registry registry;
    platform::jetstream::Client jetstream{options.nats_url, log.with_component("jetstream"),
                                          &registry};
    eventstore::Relay relay{
        {.database_url = options.database_url,
         .partitions = options.partitions,
         .stream = options.stream,
         .subject_prefix = options.subject_prefix,
         .duplicate_window = std::chrono::seconds(options.duplicate_window_seconds),
         .max_age = std::chrono::hours(options.max_age_hours),
         .instance = instance_name()},
        jetstream,
        log,
        registry};

    // /readyz checks PostgreSQL and NATS through these; the relay has its own connections.
    platform::pg::Pool health_pool{{.url = options.database_url, .size = 1, .name = "health"}};
    platform::nats::Connection health_nats{options.nats_url, log.with_component("nats")};
    platform::http::Router router;
    platform::add_service_routes(router, registry, health_pool, health_nats);
    platform::http::ServerOptions server_options;
    server_options.address = host;
    server_options.port = port;
    server_options.worker_threads = 2;
    server_options.component = "relay";
    platform::http::Server server{server_options, std::move(router), log, registry};
    try {
        server.start();
    } catch (const std::exception& e) {
        log.error("cannot listen", {{"address", options.address}, {"error", e.what()}});
        return 1;
    }
    log.info("relay serving health and metrics",
             {{"address", host + ":" + std::to_string(server.port())},
              {"stream", options.stream},
              {"subject_prefix", options.subject_prefix},
              {"partitions", options.partitions}});

    std::atomic<bool> stop{false};
    std::thread worker{[&] { relay.run(stop); }};
    for (;;) {
        timespec tick{1, 0};
        int sig = sigtimedwait(&stop_signals, nullptr, &tick);
        if (sig == SIGINT || sig == SIGTERM) break;
    }
    log.info("stopping the relay");
    stop = true;
    worker.join();
    server.stop(std::chrono::seconds(5));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
