// `ordo serve projector`: the process that runs the projection runtime over every read model.

#include <atomic>
#include <memory>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/host.hpp"
#include "app/subcommands.hpp"
#include "app/upcasters.hpp"
#include "eventstore/append_notifier.hpp"
#include "eventstore/pg_shards.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/breaker_store.hpp"
#include "platform/nats/nats.hpp"
#include "platform/pg/pg.hpp"
#include "platform/service/service_routes.hpp"
#include "projections/read_models.hpp"
#include "projections/runtime.hpp"
#include "projections/traced.hpp"
#include "projections/webhook.hpp"
#include "projections/webhook_signature.hpp"
#include "sagas/intake.hpp"

namespace ordo::app {

// `ordo serve projector`: the projection runtime with every read model; health and metrics
// over HTTP.
int run_projector(const ProjectorOptions& given, const platform::Logger& log) {
    auto options = given;
    StopSignals signals;
    platform::metrics::Registry registry;
    auto spans = span_exporter("ordo-projector", log, registry);
    platform::pg::Pool health_pool{{.url = options.database_url, .size = 1, .name = "health"}};
    platform::nats::Connection nats{options.nats, log.with_component("nats"), &registry};
    const auto upcasters = event_upcasters();
    auto models = projections::read_models();
    projections::RuntimeOptions runtime_options{.database_url = options.database_url,
                                                .partitions = options.partitions,
                                                .instance = instance_name(),
                                                .nats = options.nats,
                                                .stream = options.stream,
                                                .subject_prefix = options.subject_prefix,
                                                .upcasters = &upcasters};
    runtime_options.statement_timeout = std::chrono::milliseconds{options.statement_timeout_ms};
    runtime_options.live_buffer_bytes = static_cast<std::size_t>(options.live_buffer_mib) << 20;
    runtime_options.breaker.cool_down = std::chrono::milliseconds{options.breaker_cool_down_ms};
    runtime_options.breaker.consecutive_failures =
        static_cast<std::size_t>(options.breaker_consecutive_failures);
    std::unique_ptr<platform::KvBreakerStore> breaker_store;
    try {
        runtime_options.dead_letter_policies =
            projections::parse_dead_letter_policies(options.dead_letter_policy);
        if (!options.webhook_url.empty()) {
            std::vector<std::string> keys;
            if (!options.webhook_secret_file.empty()) {
                keys = projections::webhook_signature::parse_secrets(
                    read_secret_file(options.webhook_secret_file));
            } else {
                log.warn("webhook deliveries are not signed: set ORDO_WEBHOOK_SECRET_FILE");
            }
            if (options.webhook_url.rfind("https://", 0) != 0) {
                log.warn("webhook deliveries go over plain HTTP", {{"url", options.webhook_url}});
            }
            models.push_back(
                std::make_unique<projections::WebhookProjection>(projections::WebhookOptions{
                    .url = options.webhook_url,
                    .event_types = projections::parse_event_types(options.webhook_event_types),
                    .timeout = std::chrono::milliseconds{options.webhook_timeout_ms},
                    .ca_file = options.tls_ca_file,
                    .signing_keys = std::move(keys)}));
        }
    } catch (const std::runtime_error& e) {  // platform::InvalidInput, an unreadable secret
        log.error("refusing to start", {{"error", e.what()}});
        return 2;
    }
    if (!options.breaker_bucket.empty() && !options.nats.url.empty()) {
        breaker_store = std::make_unique<platform::KvBreakerStore>(
            options.nats, options.breaker_bucket, log.with_component("breaker-store"),
            std::chrono::milliseconds{1000}, options.nats_replicas);
        runtime_options.breaker_store = breaker_store.get();
    }
    // Consistency-token waits in the query service wake on this instead of their next poll.
    // Before the runtime, whose hook uses it: it outlives the hook.
    eventstore::AppendNotifier progress{options.database_url, log.with_component("notifier"),
                                        eventstore::AppendNotifier::kProgressChannel};
    // Made once the database has said which shards hold the events.
    std::unique_ptr<projections::Runtime> runtime;
    std::atomic<projections::Runtime*> started{nullptr};
    registry.gauge_callback("ordo_projection_owned_slots",
                            "(projection, partition) slots this instance owns", {}, [&started] {
                                auto* r = started.load();
                                return r ? static_cast<double>(r->owned_slots()) : 0.0;
                            });

    platform::http::Router router;
    platform::add_service_routes(router, registry, health_pool, nats);
    platform::http::ServerOptions server_options;
    server_options.worker_threads = 2;
    server_options.component = "projector";
    server_options.spans = spans.get();
    auto server = start_server(signals, options.address, options.tls, server_options,
                               std::move(router), log, registry);
    if (!server) return 1;
    auto map = eventstore::ShardMap::single(eventstore::kDefaultPartitions);  // the store's, below
    if (auto rc = agree_on_partitions(&signals, options.database_url, options.partitions,
                                      PartitionRole::record, log, &map)) {
        return *rc;
    }
    runtime_options.partitions = options.partitions;
    // Over a sharded store this database is the read database: each partition's events come
    // from its shard, and the saga view reads the process streams there.
    std::unique_ptr<eventstore::PgShards> shards;
    if (map.version() > 0) {
        runtime_options.shards = map;
        shards = std::make_unique<eventstore::PgShards>(
            map,
            eventstore::PgShardsOptions{
                .url = options.database_url,
                .pool = {.size = 2,
                         .statement_timeout = runtime_options.statement_timeout,
                         .name = "saga-view"},
                .upcasters = &upcasters},
            log);
    }
    models.push_back(sagas::saga_view_projection("read", &upcasters, shards.get()));
    models = projections::traced(std::move(models), spans.get(), log.with_component("projection"));
    runtime = std::make_unique<projections::Runtime>(std::move(runtime_options), std::move(models),
                                                     log, registry);
    runtime->on_batch_committed([&progress] { progress.signal(); });
    started = runtime.get();
    log.info("projector running", {{"partitions", options.partitions},
                                   {"shards", map.shards().size()},
                                   {"metrics", options.address}});

    return run_until_stopped(signals, *server, {[&](const auto& stop) { runtime->run(stop); }},
                             log);
}

}  // namespace ordo::app
