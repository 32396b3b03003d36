// `ordo serve query`: the Query API process, on the read-only database role.

#include <optional>
#include <vector>

#include <nlohmann/json.hpp>

#include "app/host.hpp"
#include "app/subcommands.hpp"
#include "app/upcasters.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/shard_map.hpp"
#include "platform/core/config.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/nats.hpp"
#include "platform/pg/pg.hpp"
#include "platform/service/service_routes.hpp"
#include "projections/dead_letter_routes.hpp"
#include "query/console.hpp"
#include "query/events_api.hpp"
#include "query/service.hpp"
#include "query/shard_sources.hpp"
#include "query/subscriptions.hpp"
#include "query/trace_collector.hpp"

namespace ordo::app {

// `ordo serve query`: the Query API on the read-only ordo_query role
// (ORDO_QUERY_DATABASE_URL): the service needs nothing else, and a bug in it can then write
// nothing. Of the event store it reads the events table alone (for the events API), never
// streams, snapshots or the command log.
int run_query(const ServeOptions& options, int partitions, const platform::Logger& log) {
    auto tokens = api_tokens(options.tokens_file, options.insecure_no_auth, options.address, log);
    if (!tokens) return 2;
    if (!options.command_url.empty() && !is_safe_redirect_base(options.command_url)) {
        log.error(
            "ORDO_COMMAND_URL must be https://..., or http:// on a loopback address: "
            "admin clients follow it with their token",
            {{"command_url", options.command_url}});
        return 2;
    }
    StopSignals signals;
    // Before serving: a read compares its token with the checkpoint of its partition.
    auto map = eventstore::ShardMap::single(eventstore::kDefaultPartitions);  // the store's, below
    if (auto rc = agree_on_partitions(&signals, options.database_url, partitions,
                                      PartitionRole::compare, log, &map))
        return *rc;

    platform::metrics::Registry registry;
    auto spans = span_exporter("ordo-query", log, registry);
    platform::pg::Pool pool{
        {.url = options.database_url,
         .size = options.pool_size,
         .name = options.component,
         .preparers = {&query::QueryService::prepare, &eventstore::EventStore::prepare_reader}}};
    pool.register_metrics(registry);
    platform::nats::Connection nats{options.nats, log.with_component("nats"), &registry};
    // Requests waiting for a consistency token are parked without a worker (up to the
    // service's bound), so a worker per connection serves every read.
    // The built-in collector's spans, for the console's trace view.
    query::SpanStore spans_kept;
    query::TraceCollector collector{spans_kept, log.with_component("collector"), registry};
    query::QueryService service{pool,      partitions, log, query::QueryService::kMaxWaiting,
                                &registry, &spans_kept};

    const auto upcasters = event_upcasters();
    platform::http::Router router;
    // The events API reads the store: this database when it is not sharded, else every shard
    // (each on a pool of its own, the query role's, prepared as a reader), and each shard a
    // newer map names while this runs. Tokens wait on the partitions whose checkpoints are in
    // their shard's order, whatever the map (Progress::passed).
    std::optional<query::ShardSources> sources;
    if (map.version() == 0) {
        sources.emplace(std::vector<query::ShardSource>{{0, &pool, options.database_url}});
    } else {
        sources.emplace(pool, map,
                        query::ShardSources::Options{
                            .url = options.database_url,
                            .pool = {.size = options.pool_size, .name = options.component}},
                        log.with_component("shards"), &registry);
    }
    // Streams are connections: at most half of them, so reads always find one.
    query::Subscriptions subscriptions{
        *sources, &upcasters,
        query::Subscriptions::Options{.capacity =
                                          std::max<std::size_t>(1, options.max_connections / 2)},
        log.with_component("subscriptions"), &registry};
    query::EventsApi events{*sources, subscriptions, &upcasters, log.with_component("events")};
    events.register_routes(router);
    service.register_routes(router);
    collector.register_routes(router);
    projections::add_dead_letter_redirects(router, options.command_url);
    query::add_console_routes(router,
                              {.command_url = options.command_url,
                               .ca_file = platform::env("ORDO_TLS_CA_FILE").value_or("")},
                              log.with_component("console"));
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
    log.info("query service listening", {{"address", options.address},
                                         {"partitions", partitions},
                                         {"shards", map.shards().size()}});

    signals.wait();
    log.info("draining requests in flight");
    // Streams first, so that their clients are told the service is stopping.
    subscriptions.stop();
    server->stop(std::chrono::seconds(10));
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
