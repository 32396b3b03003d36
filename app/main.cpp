// The `ordo` binary's entry point: every subcommand's command line, its flags with their ORDO_*
// variable defaults, handed to the run_* functions; and `ordo migrate` itself.

#include <cctype>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "app/subcommands.hpp"
#include "app/two_phase.hpp"
#include "eventstore/schema.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/config.hpp"
#include "platform/pg/migrator.hpp"

namespace ordo::app {

int run_migrate(const std::string& migrator_url, const platform::Logger& log) {
    try {
        auto report = platform::pg::migrate(migrator_url, eventstore::migrations(), log);
        log.info("migrations up to date", {{"applied", report.applied.size()},
                                           {"already_applied", report.already_applied.size()}});
        return 0;
    } catch (const platform::pg::MigrationError& e) {
        log.error(e.what());
        return 3;
    } catch (const std::exception& e) {
        log.error("migration failed", {{"error", e.what()}});
        return 1;
    }
}

namespace {

// `--nats-url` and `--nats-ca-file` of one service. Each service has a NATS user of its own,
// so its URL (which may carry `user:password@`) comes from ORDO_<SERVICE>_NATS_URL, with
// ORDO_NATS_URL as the fallback for a deployment without per-service users.
std::string nats_url_variable(const std::string& service) {
    std::string name = "ORDO_";
    for (char c : service) name.push_back(static_cast<char>(std::toupper(c)));
    return name + "_NATS_URL";
}

void add_nats_options(CLI::App* app, platform::nats::ClientSettings& settings,
                      const std::string& service) {
    settings.url = platform::env("ORDO_NATS_URL").value_or("");
    app->add_option("--nats-url", settings.url,
                    "NATS server URL(s), nats:// or tls://, may carry user:password@ "
                    "(default ORDO_NATS_URL)")
        ->envname(nats_url_variable(service));
    app->add_option("--nats-ca-file", settings.ca_file,
                    "CA certificate (PEM) the NATS server's certificate must chain to; "
                    "requires TLS")
        ->envname("ORDO_NATS_CA_FILE");
}

// `--nats-replicas`: how many copies of what the service creates in JetStream (the event
// stream, the breaker bucket) a cluster keeps; 3 on a three-node cluster.
void add_replicas_option(CLI::App* app, int& replicas, const std::string& what) {
    app->add_option("--nats-replicas", replicas,
                    what +
                        " copies over a JetStream cluster (1 on a single server, 3 on a "
                        "three-node cluster), set when created or updated")
        ->envname("ORDO_NATS_REPLICAS")
        ->check(CLI::Range(1, 5))
        ->capture_default_str();
}

void require_nats(const platform::nats::ClientSettings& settings, const std::string& service) {
    if (settings.url.empty()) {
        throw CLI::RequiredError("--nats-url (or " + nats_url_variable(service) +
                                 ", ORDO_NATS_URL)");
    }
}

}  // namespace

}  // namespace ordo::app

namespace {

// Every per-partition service's --partitions: unset, the store decides (agree_on_partitions).
const std::string kPartitionsHelp = "Partitions (P); default: the count the store recorded, or " +
                                    std::to_string(ordo::eventstore::kDefaultPartitions) +
                                    " for a new store";

// The listener's HTTPS options, alike on every `ordo serve` service; `insecure_no_tls` only
// where the listener takes bearer tokens (the command and query APIs).
void add_tls_options(CLI::App* service, ordo::app::ListenerTls& tls, bool takes_tokens) {
    auto* cert = service
                     ->add_option("--tls-cert-file", tls.cert_file,
                                  "Serve HTTPS with this PEM certificate chain (leaf first); "
                                  "SIGHUP reloads it")
                     ->envname("ORDO_TLS_CERT_FILE");
    auto* key = service
                    ->add_option("--tls-key-file", tls.key_file,
                                 "The certificate's PEM private key (unencrypted)")
                    ->envname("ORDO_TLS_KEY_FILE");
    if (takes_tokens) {
        service
            ->add_flag("--insecure-no-tls", tls.insecure_no_tls,
                       "Serve plain HTTP beyond loopback (TLS ends in a proxy in front)")
            ->excludes(cert)
            ->excludes(key);
    }
}

// The caps on open connections of an API listener. Behind a proxy every client shares the
// proxy's address, so the per-client cap must then be raised to the total.
void add_connection_options(CLI::App* service, ordo::app::ServeOptions& options) {
    service->add_option("--max-connections", options.max_connections, "Open connections at most")
        ->envname("ORDO_MAX_CONNECTIONS")
        ->check(CLI::Range(1, 65536))
        ->capture_default_str();
    service
        ->add_option("--max-connections-per-client", options.max_connections_per_client,
                     "Open connections at most from one client address (raise it behind a "
                     "proxy)")
        ->envname("ORDO_MAX_CONNECTIONS_PER_CLIENT")
        ->check(CLI::Range(1, 65536))
        ->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
    using namespace ordo;
    CLI::App cli{"ordo: CQRS and event sourcing on PostgreSQL and NATS JetStream"};
    cli.require_subcommand(1);
    std::string log_level = "info";
    cli.add_option("--log-level", log_level, "debug, info, warn or error")
        ->envname("ORDO_LOG_LEVEL")
        ->check(CLI::IsMember({"debug", "info", "warn", "error"}));
    int rc = 0;

    auto* migrate = cli.add_subcommand("migrate", "Apply the database migrations");
    std::string migrator_url;
    migrate->add_option("--database-url", migrator_url, "PostgreSQL URL of the migrator role")
        ->envname("ORDO_MIGRATOR_URL")
        ->required();
    migrate->callback([&] {
        rc = app::run_migrate(migrator_url, platform::Logger::stderr_logger(
                                                "migrate", platform::parse_log_level(log_level)));
    });

    auto* dev = cli.add_subcommand(
        "dev", "Run the whole stack locally: PostgreSQL, NATS JetStream and every service");
    app::DevOptions dev_options;
    dev_options.data_dir = std::string{ORDO_SOURCE_DIR} + "/.ordo/dev";
    dev_options.stack_script = std::string{ORDO_SOURCE_DIR} + "/deploy/stack.sh";
    dev->add_option("--data-dir", dev_options.data_dir, "Folder for the cluster and NATS store")
        ->envname("ORDO_STACK_DIR")
        ->capture_default_str();
    dev->add_option("--stack-script", dev_options.stack_script, "The stack script")
        ->capture_default_str();
    dev->add_flag("--fresh", dev_options.fresh, "Wipe the data folder first");
    dev->add_option("--shards", dev_options.shards,
                    "PostgreSQL clusters, one per shard of the event store")
        ->check(CLI::Range(1, 8))
        ->capture_default_str();
    dev->add_flag("--ha", dev_options.ha,
                  "The highly available cluster instead: etcd, Patroni, three NATS nodes, "
                  "HAProxy and two of every service (deploy/cluster.sh; data in .ordo/cluster)");
    dev_options.monitoring_script = std::string{ORDO_SOURCE_DIR} + "/deploy/monitoring.sh";
    dev->add_flag("--monitoring", dev_options.monitoring,
                  "Also run Prometheus and Alertmanager (deploy/monitoring.sh)");
    dev->add_flag("!--keep-stack", dev_options.stop_stack,
                  "Leave PostgreSQL and NATS running on exit");
    dev->callback([&] {
        if (dev_options.ha) {
            if (dev->count("--data-dir") == 0 && !platform::env("ORDO_STACK_DIR")) {
                dev_options.data_dir = std::string{ORDO_SOURCE_DIR} + "/.ordo/cluster";
            }
            if (dev->count("--stack-script") == 0) {
                dev_options.stack_script = std::string{ORDO_SOURCE_DIR} + "/deploy/cluster.sh";
            }
        }
        rc = app::run_dev(dev_options, platform::Logger::stderr_logger(
                                           "dev", platform::parse_log_level(log_level)));
    });

    auto* serve = cli.add_subcommand("serve", "Run one Ordo service");
    serve->require_subcommand(1);
    app::ServeOptions serve_options;
    auto* serve_command = serve->add_subcommand("command", "The command API (REST)");
    serve_command->add_option("--address", serve_options.address, "host:port to listen on")
        ->envname("ORDO_COMMAND_ADDR")
        ->capture_default_str();
    for (auto* s : {serve_command}) {
        s->add_option("--database-url", serve_options.database_url,
                      "PostgreSQL URL of the ordo_command role")
            ->envname("ORDO_COMMAND_DATABASE_URL")
            ->required();
        app::add_nats_options(s, serve_options.nats, "command");
        s->add_option("--tokens-file", serve_options.tokens_file,
                      "API tokens: one 'name scopes sha256' line each (ordo token new)")
            ->envname("ORDO_API_TOKENS_FILE");
        s->add_flag("--insecure-no-auth", serve_options.insecure_no_auth,
                    "Serve /v1 routes without tokens (loopback addresses only)");
        add_tls_options(s, serve_options.tls, true);
        add_connection_options(s, serve_options);
        s->add_option("--pool-size", serve_options.pool_size, "Database connections")
            ->envname("ORDO_DB_POOL_SIZE")
            ->check(CLI::Range(1, 256))
            ->capture_default_str();
    }
    serve_command->callback([&] {
        serve_options.component = "command";
        app::require_nats(serve_options.nats, "command");
        rc = app::run_serve(serve_options, platform::Logger::stderr_logger(
                                               "command", platform::parse_log_level(log_level)));
    });

    auto* serve_projector =
        serve->add_subcommand("projector", "Projection workers that build the read models");
    app::ProjectorOptions projector_options;
    serve_projector->add_option("--address", projector_options.address, "host:port for metrics")
        ->envname("ORDO_PROJECTOR_ADDR")
        ->capture_default_str();
    serve_projector
        ->add_option("--database-url", projector_options.database_url,
                     "PostgreSQL URL of the ordo_projector role")
        ->envname("ORDO_PROJECTOR_DATABASE_URL")
        ->required();
    app::add_nats_options(serve_projector, projector_options.nats, "projector");
    serve_projector->add_option("--partitions", projector_options.partitions, kPartitionsHelp)
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, eventstore::kMaxPartitions));
    serve_projector->add_option("--stream", projector_options.stream, "JetStream stream")
        ->envname("ORDO_NATS_STREAM")
        ->capture_default_str();
    serve_projector
        ->add_option("--subject-prefix", projector_options.subject_prefix, "Subject prefix")
        ->envname("ORDO_NATS_SUBJECT_PREFIX")
        ->capture_default_str();
    serve_projector
        ->add_option("--dead-letter-policy", projector_options.dead_letter_policy,
                     "Per projection, what a partition does after a poison event: "
                     "orders=halt,inventory=skip (default skip)")
        ->envname("ORDO_DEAD_LETTER_POLICY");
    serve_projector
        ->add_option("--breaker-bucket", projector_options.breaker_bucket,
                     "NATS KV bucket the fleet shares breaker states in; empty: each alone")
        ->envname("ORDO_BREAKER_BUCKET")
        ->capture_default_str();
    app::add_replicas_option(serve_projector, projector_options.nats_replicas,
                             "The breaker bucket's");
    serve_projector
        ->add_option("--breaker-cool-down-ms", projector_options.breaker_cool_down_ms,
                     "First cool-down of an open breaker")
        ->envname("ORDO_BREAKER_COOL_DOWN_MS")
        ->check(CLI::Range(10, 600000))
        ->capture_default_str();
    serve_projector
        ->add_option("--breaker-consecutive-failures",
                     projector_options.breaker_consecutive_failures,
                     "Failures in a row that open a breaker")
        ->envname("ORDO_BREAKER_CONSECUTIVE_FAILURES")
        ->check(CLI::Range(1, 1000))
        ->capture_default_str();
    serve_projector
        ->add_option("--statement-timeout-ms", projector_options.statement_timeout_ms,
                     "Bound on each statement of a batch")
        ->envname("ORDO_PROJECTOR_STATEMENT_TIMEOUT_MS")
        ->check(CLI::Range(100, 600000))
        ->capture_default_str();
    serve_projector
        ->add_option("--live-buffer-mib", projector_options.live_buffer_mib,
                     "Bound on live events held in memory, all partitions together")
        ->envname("ORDO_LIVE_BUFFER_MIB")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    serve_projector
        ->add_option("--webhook-url", projector_options.webhook_url,
                     "https:// (or http://) URL to POST selected events to (the webhook "
                     "projection)")
        ->envname("ORDO_WEBHOOK_URL");
    serve_projector
        ->add_option("--webhook-secret-file", projector_options.webhook_secret_file,
                     "File (mode 0600) of whsec_... secrets that sign each delivery (Standard "
                     "Webhooks)")
        ->envname("ORDO_WEBHOOK_SECRET_FILE");
    serve_projector
        ->add_option("--tls-ca-file", projector_options.tls_ca_file,
                     "PEM CA certificates the webhook's https:// server is verified against, "
                     "instead of the system's")
        ->envname("ORDO_TLS_CA_FILE");
    add_tls_options(serve_projector, projector_options.tls, false);
    serve_projector
        ->add_option("--webhook-event-types", projector_options.webhook_event_types,
                     "Comma-separated event types the webhook forwards (default all)")
        ->envname("ORDO_WEBHOOK_EVENT_TYPES");
    serve_projector
        ->add_option("--webhook-timeout-ms", projector_options.webhook_timeout_ms,
                     "Timeout of one webhook POST")
        ->envname("ORDO_WEBHOOK_TIMEOUT_MS")
        ->check(CLI::Range(10, 600000))
        ->capture_default_str();
    serve_projector->callback([&] {
        app::require_nats(projector_options.nats, "projector");
        rc = app::run_projector(
            projector_options,
            platform::Logger::stderr_logger("projector", platform::parse_log_level(log_level)));
    });

    auto* serve_relay =
        serve->add_subcommand("relay", "The relay from the event store to JetStream");
    app::RelayServeOptions relay_options;
    serve_relay->add_option("--address", relay_options.address, "host:port for health and metrics")
        ->envname("ORDO_RELAY_ADDR")
        ->capture_default_str();
    serve_relay
        ->add_option("--database-url", relay_options.database_url,
                     "PostgreSQL URL of the ordo_relay role")
        ->envname("ORDO_RELAY_DATABASE_URL")
        ->required();
    app::add_nats_options(serve_relay, relay_options.nats, "relay");
    serve_relay->add_option("--partitions", relay_options.partitions, kPartitionsHelp)
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, eventstore::kMaxPartitions));
    serve_relay->add_option("--stream", relay_options.stream, "JetStream stream")
        ->envname("ORDO_NATS_STREAM")
        ->capture_default_str();
    serve_relay->add_option("--subject-prefix", relay_options.subject_prefix, "Subject prefix")
        ->envname("ORDO_NATS_SUBJECT_PREFIX")
        ->capture_default_str();
    serve_relay
        ->add_option("--duplicate-window-seconds", relay_options.duplicate_window_seconds,
                     "JetStream duplicate window (Nats-Msg-Id)")
        ->envname("ORDO_NATS_DUPLICATE_WINDOW")
        ->check(CLI::Range(1, 86400))
        ->capture_default_str();
    serve_relay->add_option("--max-age-hours", relay_options.max_age_hours, "JetStream retention")
        ->envname("ORDO_NATS_MAX_AGE")
        ->check(CLI::Range(1, 87600))
        ->capture_default_str();
    app::add_replicas_option(serve_relay, relay_options.nats_replicas, "The stream's");
    serve_relay
        ->add_option("--shard", relay_options.shard,
                     "The shard of the map this relay publishes (0 without a map)")
        ->envname("ORDO_RELAY_SHARD")
        ->check(CLI::Range(0, eventstore::kMaxShards - 1))
        ->capture_default_str();
    add_tls_options(serve_relay, relay_options.tls, false);
    serve_relay->callback([&] {
        app::require_nats(relay_options.nats, "relay");
        rc = app::run_relay(relay_options, platform::Logger::stderr_logger(
                                               "relay", platform::parse_log_level(log_level)));
    });

    auto* serve_query =
        serve->add_subcommand("query", "The query API (REST) on the read-only role");
    app::ServeOptions query_options;
    query_options.address = "127.0.0.1:8081";
    int query_partitions = app::kAdoptPartitions;
    serve_query->add_option("--address", query_options.address, "host:port to listen on")
        ->envname("ORDO_QUERY_ADDR")
        ->capture_default_str();
    serve_query
        ->add_option("--database-url", query_options.database_url,
                     "PostgreSQL URL of the ordo_query role")
        ->envname("ORDO_QUERY_DATABASE_URL")
        ->required();
    app::add_nats_options(serve_query, query_options.nats, "query");
    serve_query
        ->add_option("--tokens-file", query_options.tokens_file,
                     "API tokens: one 'name scopes sha256' line each (ordo token new)")
        ->envname("ORDO_API_TOKENS_FILE");
    serve_query->add_flag("--insecure-no-auth", query_options.insecure_no_auth,
                          "Serve /v1 routes without tokens (loopback addresses only)");
    add_tls_options(serve_query, query_options.tls, true);
    add_connection_options(serve_query, query_options);
    serve_query
        ->add_option("--command-url", query_options.command_url,
                     "Base URL of the Command API (https, or http on loopback), where moved "
                     "admin routes redirect")
        ->envname("ORDO_COMMAND_URL");
    serve_query->add_option("--partitions", query_partitions, kPartitionsHelp)
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, eventstore::kMaxPartitions));
    serve_query->add_option("--pool-size", query_options.pool_size, "Database connections")
        ->envname("ORDO_DB_POOL_SIZE")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    serve_query->callback([&] {
        query_options.component = "query";
        app::require_nats(query_options.nats, "query");
        rc = app::run_query(
            query_options, query_partitions,
            platform::Logger::stderr_logger("query", platform::parse_log_level(log_level)));
    });

    auto* serve_sagas = serve->add_subcommand(
        "sagas", "Order fulfillment: the saga runner (orchestration or choreography)");
    app::SagasOptions sagas_options;
    serve_sagas->add_option("--address", sagas_options.address, "host:port for health and metrics")
        ->envname("ORDO_SAGAS_ADDR")
        ->capture_default_str();
    serve_sagas
        ->add_option("--database-url", sagas_options.database_url,
                     "PostgreSQL URL of the ordo_sagas role")
        ->envname("ORDO_SAGAS_DATABASE_URL")
        ->required();
    app::add_nats_options(serve_sagas, sagas_options.nats, "sagas");
    serve_sagas->add_option("--mode", sagas_options.mode, "orchestration or choreography")
        ->envname("ORDO_SAGA_MODE")
        ->check(CLI::IsMember({"orchestration", "choreography"}))
        ->capture_default_str();
    serve_sagas->add_option("--partitions", sagas_options.partitions, kPartitionsHelp)
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, eventstore::kMaxPartitions));
    serve_sagas->add_option("--stream", sagas_options.stream, "JetStream stream")
        ->envname("ORDO_NATS_STREAM")
        ->capture_default_str();
    serve_sagas->add_option("--subject-prefix", sagas_options.subject_prefix, "Subject prefix")
        ->envname("ORDO_NATS_SUBJECT_PREFIX")
        ->capture_default_str();
    serve_sagas->add_option("--workers", sagas_options.workers, "Runner threads")
        ->envname("ORDO_SAGA_WORKERS")
        ->check(CLI::Range(1, 64))
        ->capture_default_str();
    serve_sagas->add_option("--pool-size", sagas_options.pool_size, "Database connections")
        ->envname("ORDO_DB_POOL_SIZE")
        ->check(CLI::Range(2, 256))
        ->capture_default_str();
    serve_sagas
        ->add_option("--step-timeout-ms", sagas_options.step_timeout_ms,
                     "Orchestration: deadline of a reserve or authorize step")
        ->envname("ORDO_SAGA_STEP_TIMEOUT_MS")
        ->check(CLI::Range(100, 86'400'000))
        ->capture_default_str();
    serve_sagas
        ->add_option("--fulfillment-timeout-ms", sagas_options.fulfillment_timeout_ms,
                     "Choreography: the order's deadline to be confirmed")
        ->envname("ORDO_SAGA_TIMEOUT_MS")
        ->check(CLI::Range(100, 86'400'000))
        ->capture_default_str();
    serve_sagas
        ->add_option("--lock-timeout-ms", sagas_options.lock_timeout_ms,
                     "How long a step's command waits for a row lock before it is retried")
        ->envname("ORDO_SAGA_LOCK_TIMEOUT_MS")
        ->check(CLI::Range(10, 600'000))
        ->capture_default_str();
    add_tls_options(serve_sagas, sagas_options.tls, false);
    serve_sagas
        ->add_option("--live-buffer-mib", sagas_options.live_buffer_mib,
                     "Bound on the intake's live events held in memory")
        ->envname("ORDO_LIVE_BUFFER_MIB")
        ->check(CLI::Range(1, 4096))
        ->capture_default_str();
    serve_sagas->callback([&] {
        app::require_nats(sagas_options.nats, "sagas");
        rc = app::run_sagas(sagas_options, platform::Logger::stderr_logger(
                                               "sagas", platform::parse_log_level(log_level)));
    });

    auto* two_phase_recover = cli.add_subcommand(
        "2pc-recover", "List orphaned prepared transactions (two-phase commit) and resolve them");
    app::two_phase::RecoverOptions recover_options;
    two_phase_recover
        ->add_option("--server-url", recover_options.server_url,
                     "PostgreSQL URL of a superuser (or of the role that prepared them)")
        ->envname("ORDO_PG_ADMIN_URL")
        ->required();
    auto* recover_commit = two_phase_recover->add_option("--commit", recover_options.commit_gid,
                                                         "COMMIT PREPARED this gid");
    auto* recover_rollback = two_phase_recover->add_option(
        "--rollback", recover_options.rollback_gid, "ROLLBACK PREPARED this gid");
    auto* recover_older =
        two_phase_recover
            ->add_option("--resolve-older-than", recover_options.resolve_older_than_seconds,
                         "Resolve Ordo global transactions whose prepared "
                         "participants are all older than this (seconds), by "
                         "the rule of docs/sagas.md")
            ->check(CLI::Range(0, 315360000));
    recover_commit->excludes(recover_rollback)->excludes(recover_older);
    recover_rollback->excludes(recover_older);
    two_phase_recover->add_flag("--json", recover_options.json, "One JSON object per line");
    two_phase_recover->callback([&] {
        rc = app::two_phase::run_recover(
            recover_options,
            platform::Logger::stderr_logger("2pc-recover", platform::parse_log_level(log_level)));
    });

    auto* rebuild = cli.add_subcommand(
        "rebuild", "Rebuild a projection's read model from the event store and swap it in");
    app::RebuildCommandOptions rebuild_options;
    rebuild
        ->add_option("projection", rebuild_options.projection,
                     "orders, inventory, accounts or traces")
        ->required();
    rebuild
        ->add_option("--database-url", rebuild_options.rebuild.database_url,
                     "PostgreSQL URL of the migrator role (it owns the read-model tables)")
        ->envname("ORDO_MIGRATOR_URL")
        ->required();
    rebuild_options.rebuild.partitions = app::kAdoptPartitions;
    rebuild->add_option("--partitions", rebuild_options.rebuild.partitions, kPartitionsHelp)
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, eventstore::kMaxPartitions));
    rebuild->add_option("--batch", rebuild_options.rebuild.batch, "Events per transaction")
        ->check(CLI::Range(1, 1'000'000))
        ->capture_default_str();
    rebuild->add_flag("--dry-run", rebuild_options.rebuild.dry_run,
                      "Report what would be done and change nothing");
    rebuild->add_flag("--wait", rebuild_options.rebuild.wait,
                      "Wait until no live projector owns the projection");
    int rebuild_wait_seconds = 0;
    rebuild
        ->add_option("--wait-timeout", rebuild_wait_seconds,
                     "Seconds to wait with --wait (0: no limit)")
        ->check(CLI::Range(0, 86400))
        ->capture_default_str();
    rebuild->add_flag("--force", rebuild_options.rebuild.force,
                      "Rebuild although a live projector owns the projection");
    rebuild->callback([&] {
        rebuild_options.rebuild.wait_timeout = std::chrono::seconds(rebuild_wait_seconds);
        rc = app::run_rebuild(
            rebuild_options,
            platform::Logger::stderr_logger("rebuild", platform::parse_log_level(log_level)));
    });

    auto* dead_letters = cli.add_subcommand(
        "dead-letters", "List, retry or skip the events projections parked as poison");
    dead_letters->require_subcommand(1);
    app::DeadLetterOptions dead_letter_options;
    dead_letters
        ->add_option("--database-url", dead_letter_options.database_url,
                     "PostgreSQL URL of the ordo_command role (it takes the Command API's "
                     "dead-letter requests)")
        ->envname("ORDO_COMMAND_DATABASE_URL")
        ->required();
    auto* dead_list = dead_letters->add_subcommand("list", "One JSON line per dead letter");
    dead_list->add_option("--projection", dead_letter_options.projection, "Only this projection");
    dead_list
        ->add_option("--status", dead_letter_options.status,
                     "Only this status (parked, retry_requested, skip_requested, resolved, "
                     "skipped)")
        ->check(
            CLI::IsMember({"parked", "retry_requested", "skip_requested", "resolved", "skipped"}));
    dead_list->add_option("--limit", dead_letter_options.limit, "At most this many")
        ->check(CLI::Range(1, 10000))
        ->capture_default_str();
    auto* dead_retry =
        dead_letters->add_subcommand("retry", "Ask the projector to apply a parked event again");
    dead_retry->add_option("id", dead_letter_options.id, "Dead letter id")
        ->required()
        ->check(CLI::PositiveNumber);
    auto* dead_skip =
        dead_letters->add_subcommand("skip", "Ask the projector to give up on a parked event");
    dead_skip->add_option("id", dead_letter_options.id, "Dead letter id")
        ->required()
        ->check(CLI::PositiveNumber);
    for (const auto& [sub, name] : std::initializer_list<std::pair<CLI::App*, const char*>>{
             {dead_list, "list"}, {dead_retry, "retry"}, {dead_skip, "skip"}}) {
        sub->callback([&, action = std::string{name}] {
            dead_letter_options.action = action;
            rc = app::run_dead_letters(dead_letter_options,
                                       platform::Logger::stderr_logger(
                                           "dead-letters", platform::parse_log_level(log_level)));
        });
    }

    auto* shards = cli.add_subcommand("shards", "The event store's shards: the partition map");
    shards->require_subcommand(1);
    app::ShardsOptions shards_options;
    shards
        ->add_option("--database-url", shards_options.database_url,
                     "PostgreSQL URL of the migrator role on the control database")
        ->envname("ORDO_MIGRATOR_URL")
        ->required();
    shards->add_option("--partitions", shards_options.partitions, "Partitions (P)")
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, eventstore::kMaxPartitions))
        ->capture_default_str();
    // init and add name shards the same way.
    auto shard_locations = [&](CLI::App* command) {
        command
            ->add_option("--shard", shards_options.shards,
                         "<id>=<host[:port][,host[:port]...]>/<database>, once per shard")
            ->required();
    };
    auto* shards_init = shards->add_subcommand(
        "init", "Write the first shard map of a new store: partitions spread over the shards");
    shard_locations(shards_init);
    shards_init->add_flag("--if-absent", shards_options.if_absent,
                          "No error when the store's map is written already over these shards "
                          "(for a deploy step run at every release)");
    auto* shards_add = shards->add_subcommand(
        "add", "Register a new, empty shard with a written map; partitions then move to it");
    shard_locations(shards_add);
    auto* shards_list =
        shards->add_subcommand("list", "Show the partitions, size and relay leader of each shard");
    shards_list->add_flag("--json", shards_options.json, "One JSON object");
    auto* shards_move = shards->add_subcommand(
        "move",
        "Move one partition to another shard, its writes paused from its fence to its flip");
    shards_move->add_option("--partition", shards_options.partition, "The partition")
        ->required()
        ->check(CLI::Range(0, eventstore::kMaxPartitions - 1));
    shards_move->add_option("--to", shards_options.to, "The shard it goes to (registered)")
        ->check(CLI::Range(0, eventstore::kMaxShards - 1));
    shards_move->add_flag("--rollback", shards_options.rollback,
                          "Undo the partition's unfinished move (before its map flipped)");
    shards_move->add_flag("--ignore-unrouted-keys", shards_options.ignore_unrouted_keys,
                          "Move although the source shard keeps idempotency keys from before "
                          "migration 0017, which stay behind");
    shards_move->add_option("--batch", shards_options.batch, "Events per copying transaction")
        ->check(CLI::Range(1, 100'000))
        ->capture_default_str();
    shards_move
        ->add_option("--wait-timeout", shards_options.wait_seconds,
                     "How long to wait for writes in flight when the partition is fenced (s)")
        ->check(CLI::Range(1, 3600))
        ->capture_default_str();
    // `ordo shards list --database-url ...` as well as `ordo shards --database-url ... list`.
    shards_init->fallthrough();
    shards_add->fallthrough();
    shards_list->fallthrough();
    shards_move->fallthrough();
    shards_move->callback([&] {
        rc = app::run_shards_move(
            shards_options,
            platform::Logger::stderr_logger("shards", platform::parse_log_level(log_level)));
    });
    shards_init->callback([&] {
        rc = app::run_shards_init(
            shards_options,
            platform::Logger::stderr_logger("shards", platform::parse_log_level(log_level)));
    });
    shards_add->callback([&] {
        rc = app::run_shards_add(
            shards_options,
            platform::Logger::stderr_logger("shards", platform::parse_log_level(log_level)));
    });
    shards_list->callback([&] {
        rc = app::run_shards_list(
            shards_options,
            platform::Logger::stderr_logger("shards", platform::parse_log_level(log_level)));
    });

    auto* token = cli.add_subcommand("token", "Issue API tokens");
    token->require_subcommand(1);
    auto* token_new = token->add_subcommand(
        "new", "Print a new token once, and the line that admits it in ORDO_API_TOKENS_FILE");
    std::string token_name, token_scopes;
    token_new->add_option("name", token_name, "Who holds it: the actor of its commands")
        ->required();
    token_new
        ->add_option("--scopes", token_scopes,
                     "Comma-separated: commands (Command API), read (Query API), admin, "
                     "telemetry (sending spans to the query service)")
        ->required();
    token_new->callback([&] { rc = app::run_token_new(token_name, token_scopes); });

    // The shared roles' URLs of earlier releases: an upgrade that still sets only these would
    // otherwise learn no more than "--database-url is required".
    for (const char* retired : {"ORDO_DATABASE_URL", "ORDO_READER_URL"}) {
        if (platform::env(retired)) {
            platform::Logger::stderr_logger("ordo").warn(
                "this variable is no longer read: each service connects as its own role, from "
                "ORDO_<SERVICE>_DATABASE_URL (docs/operations.md, upgrading)",
                {{"variable", retired}});
        }
    }
    CLI11_PARSE(cli, argc, argv);
    return rc;
}
