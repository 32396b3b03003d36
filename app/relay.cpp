// `ordo serve relay`: the process that publishes the event store to JetStream.

#include <algorithm>
#include <atomic>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "app/host.hpp"
#include "app/subcommands.hpp"
#include "eventstore/shard_catalog.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/nats/nats.hpp"
#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"
#include "platform/service/service_routes.hpp"
#include "relay/relay.hpp"

namespace ordo::app {

// `ordo serve relay`: the store to JetStream; health and metrics over HTTP.
int run_relay(const RelayServeOptions& given, const platform::Logger& log) {
    auto options = given;
    StopSignals signals;
    // A relay serves one shard: the control database's map says where it is (shard 0 of a
    // store without a map is the database itself), and the shard keeps its partition count.
    auto map = eventstore::ShardMap::single(eventstore::kDefaultPartitions);  // the store's, below
    if (auto rc = agree_on_partitions(&signals, options.database_url, options.partitions,
                                      PartitionRole::record, log, &map)) {
        return *rc;
    }
    // A shard of the map, or one registered that owns no partition yet (`ordo shards add`):
    // its relay runs before the first move to it, so that the move finds it publishing.
    std::optional<eventstore::ShardLocation> location;
    for (const auto& shard : map.shards()) {
        if (shard.id == options.shard) location = shard;
    }
    if (!location && map.version() > 0 &&
        options.shard < static_cast<int>(eventstore::kMaxShards)) {
        try {
            platform::pg::Session conn{options.database_url, "ordo-relay"};
            pqxx::read_transaction txn{conn};
            location = eventstore::registered_shard(txn, options.shard);
        } catch (const std::exception& e) {
            log.error("cannot read the registered shards", {{"error", e.what()}});
            return 1;
        }
    }
    if (!location) {
        log.error("refusing to start: the shard map has no such shard",
                  {{"shard", options.shard}, {"map_version", map.version()}});
        return 2;
    }
    const auto database_url = eventstore::shard_url(options.database_url, *location);
    if (map.version() > 0) {
        if (auto rc = agree_on_partitions(&signals, database_url, options.partitions,
                                          PartitionRole::record, log)) {
            return *rc;
        }
    }

    platform::metrics::Registry registry;
    auto spans = span_exporter("ordo-relay", log, registry);
    platform::jetstream::Client jetstream{options.nats, log.with_component("jetstream"), &registry};
    relay::Relay relay{{.database_url = database_url,
                        .partitions = options.partitions,
                        .stream = options.stream,
                        .subject_prefix = options.subject_prefix,
                        .duplicate_window = std::chrono::seconds(options.duplicate_window_seconds),
                        .max_age = std::chrono::hours(options.max_age_hours),
                        .replicas = options.nats_replicas,
                        .shard = options.shard,
                        .instance = instance_name(),
                        .spans = spans.get()},
                       jetstream,
                       log,
                       registry};

    // /readyz checks PostgreSQL and NATS through these; the relay has its own connections.
    platform::pg::Pool health_pool{{.url = database_url, .size = 1, .name = "health"}};
    platform::nats::Connection health_nats{options.nats, log.with_component("nats"), &registry};
    platform::http::Router router;
    platform::add_service_routes(router, registry, health_pool, health_nats);
    platform::http::ServerOptions server_options;
    server_options.worker_threads = 2;
    server_options.component = "relay";
    server_options.spans = spans.get();
    auto server = start_server(signals, options.address, options.tls, server_options,
                               std::move(router), log, registry);
    if (!server) return 1;
    log.info("relay serving health and metrics", {{"address", options.address},
                                                  {"shard", options.shard},
                                                  {"stream", options.stream},
                                                  {"subject_prefix", options.subject_prefix},
                                                  {"partitions", options.partitions}});

    return run_until_stopped(signals, *server, {[&](const auto& stop) { relay.run(stop); }}, log);
}

}  // namespace ordo::app
