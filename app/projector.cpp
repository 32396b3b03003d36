#include <signal.h>
#include <unistd.h>

#include <thread>

#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "platform/http_server.hpp"
#include "platform/metrics.hpp"
#include "platform/nats.hpp"
#include "platform/pg.hpp"
#include "platform/service_routes.hpp"
#include "projections/read_models.hpp"
#include "projections/runtime.hpp"

namespace ordo::app {

int run_projector(const ProjectorOptions& options, const platform::Logger& log) {
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    platform::metrics::Registry registry;
    platform::pg::Pool health_pool{{.url = options.database_url, .size = 1, .name = "health",
                                    .preparers = {}}};
    platform::nats::Connection nats{options.nats_url, log.with_component("nats")};
    char host[256] = "projector";
    gethostname(host, sizeof host - 1);
    projections::Runtime runtime{{.database_url = options.database_url,
                                  .partitions = options.partitions,
                                  .instance = std::string{host} + ":" + std::to_string(getpid()),
                                  .nats_url = options.nats_url,
                                  .stream = options.stream,
                                  .subject_prefix = options.subject_prefix},
                                 projections::read_models(), log, registry};
    registry.gauge_callback("ordo_projection_owned_slots",
                            "(projection, partition) slots this instance owns", {},
                            [&runtime] { return static_cast<double>(runtime.owned_slots()); });

    platform::http::Router router;
    platform::add_service_routes(router, registry, health_pool, nats);
    auto colon = options.address.rfind(':');
    platform::http::ServerOptions server_options;
    server_options.address = options.address.substr(0, colon);
    server_options.port = static_cast<std::uint16_t>(std::stoi(options.address.substr(colon + 1)));
    server_options.worker_threads = 2;
    server_options.component = "projector";
    platform::http::Server server{server_options, std::move(router), log, registry};
    try {
        server.start();
    } catch (const std::exception& e) {
        log.error("cannot listen", {{"address", options.address}, {"error", e.what()}});
        return 1;
    }
    log.info("projector running", {{"partitions", options.partitions},
                                   {"metrics", options.address}});

    std::atomic<bool> stop{false};
    std::thread worker{[&] { runtime.run(stop); }};
    int sig = 0;
    sigwait(&stop_signals, &sig);
    log.info("stopping");
    stop = true;
    worker.join();
    server.stop(std::chrono::seconds(5));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
