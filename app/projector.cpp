#include <thread>

#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "app/host.hpp"
#include "platform/metrics.hpp"
#include "platform/nats.hpp"
#include "platform/pg.hpp"
#include "platform/service_routes.hpp"
#include "projections/read_models.hpp"
#include "projections/runtime.hpp"

namespace ordo::app {

// `ordo serve projector`: the projection runtime with every read model; health and metrics
// over HTTP.
int run_projector(const ProjectorOptions& options, const platform::Logger& log) {
    StopSignals signals;
    platform::metrics::Registry registry;
    platform::pg::Pool health_pool{{.url = options.database_url, .size = 1, .name = "health"}};
    platform::nats::Connection nats{options.nats_url, log.with_component("nats")};
    projections::Runtime runtime{{.database_url = options.database_url,
                                  .partitions = options.partitions,
                                  .instance = instance_name(),
                                  .nats_url = options.nats_url,
                                  .stream = options.stream,
                                  .subject_prefix = options.subject_prefix},
                                 projections::read_models(),
                                 log,
                                 registry};
    registry.gauge_callback("ordo_projection_owned_slots",
                            "(projection, partition) slots this instance owns", {},
                            [&runtime] { return static_cast<double>(runtime.owned_slots()); });

    platform::http::Router router;
    platform::add_service_routes(router, registry, health_pool, nats);
    platform::http::ServerOptions server_options;
    server_options.worker_threads = 2;
    server_options.component = "projector";
    auto server = start_server(options.address, server_options, std::move(router), log, registry);
    if (!server) return 1;
    log.info("projector running",
             {{"partitions", options.partitions}, {"metrics", options.address}});

    std::atomic<bool> stop{false};
    std::thread worker{[&] { runtime.run(stop); }};
    signals.wait();
    log.info("stopping");
    stop = true;
    worker.join();
    server->stop(std::chrono::seconds(5));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
