// `ordo serve command`: the Command API process, and the periodic expiry of old idempotency keys.

#include <nlohmann/json.hpp>

#include "app/host.hpp"
#include "app/subcommands.hpp"
#include "app/upcasters.hpp"
#include "command/executor.hpp"
#include "command/service.hpp"
#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/pg_shards.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/nats.hpp"
#include "platform/pg/pg.hpp"
#include "platform/service/service_routes.hpp"
#include "projections/dead_letter_routes.hpp"

namespace ordo::app {

// `ordo serve command`: the Command API on the ordo_command role.
int run_serve(const ServeOptions& options, const platform::Logger& log) {
    auto tokens = api_tokens(options.tokens_file, options.insecure_no_auth, options.address, log);
    if (!tokens) return 2;
    StopSignals signals;

    platform::metrics::Registry registry;
    auto spans = span_exporter("ordo-" + options.component, log, registry);
    platform::pg::Pool pool{{.url = options.database_url,
                             .size = options.pool_size,
                             .name = options.component,
                             .preparers = {&eventstore::EventStore::prepare}}};
    pool.register_metrics(registry);
    platform::nats::Connection nats{options.nats, log.with_component("nats"), &registry};
    // The shard map decides where each stream's commands run; a store without one is a
    // single shard, this very database.
    auto map = eventstore::ShardMap::single(eventstore::kDefaultPartitions);
    int no_count = 0;
    if (auto rc = agree_on_partitions(&signals, options.database_url, no_count,
                                      PartitionRole::compare, log, &map)) {
        return *rc;
    }
    const auto upcasters = event_upcasters();
    std::unique_ptr<eventstore::AppendNotifier> notifier;
    std::unique_ptr<eventstore::PgShards> shards;
    std::unique_ptr<command::Executor> executor;
    if (map.version() == 0) {
        notifier = std::make_unique<eventstore::AppendNotifier>(options.database_url,
                                                                log.with_component("notifier"));
        executor = std::make_unique<command::Executor>(
            pool, notifier.get(), registry, log,
            command::Executor::Options{.upcasters = &upcasters, .unlocked_first = true});
    } else {
        shards = std::make_unique<eventstore::PgShards>(
            map,
            eventstore::PgShardsOptions{
                .url = options.database_url,
                .pool = {.size = options.pool_size, .name = options.component},
                .upcasters = &upcasters},
            log);
        shards->register_metrics(registry);
        executor = std::make_unique<command::Executor>(
            *shards, registry, log, command::Executor::Options{.unlocked_first = true});
        log.info("commands run on the shards of the map",
                 {{"map_version", map.version()}, {"shards", map.shards().size()}});
    }
    command::CommandService service{*executor, log};

    platform::http::Router router;
    service.register_routes(router);
    projections::add_dead_letter_routes(router, pool, log);
    platform::add_service_routes(router, registry, pool, nats);
    platform::http::ServerOptions server_options;
    server_options.tokens = *tokens;
    server_options.worker_threads = options.pool_size;
    server_options.max_connections = options.max_connections;
    server_options.max_connections_per_client = options.max_connections_per_client;
    server_options.component = options.component;
    server_options.spans = spans.get();
    auto server = start_server(signals, options.address, options.tls, server_options,
                               std::move(router), log, registry);
    if (!server) return 1;
    reload_tokens_on_hangup(signals, *server, options.tokens_file, log, registry);
    log.info("command service listening", {{"address", options.address}});

    auto next_expiry = std::chrono::steady_clock::now() + std::chrono::minutes(1);
    while (!signals.wait_for(std::chrono::seconds(1))) {
        if (std::chrono::steady_clock::now() < next_expiry) continue;
        next_expiry += std::chrono::minutes(5);
        try {
            // Idempotency keys are promised for at least 24 hours; keep them for 48. Small
            // batches every few minutes keep up with any rate the service can append at.
            auto expired = executor->expire(std::chrono::hours(48));
            if (expired.records > 0) {
                log.info("idempotency keys expired",
                         {{"records", expired.records}, {"batches", expired.batches}});
            }
        } catch (const std::exception& e) {
            log.warn("could not expire old idempotency keys", {{"error", e.what()}});
        }
    }
    log.info("draining requests in flight");
    server->stop(std::chrono::seconds(10));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
