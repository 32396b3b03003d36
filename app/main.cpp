#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "app/commands.hpp"
#include "eventstore/schema.hpp"
#include "platform/migrator.hpp"

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

}  // namespace ordo::app

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
    dev->add_flag("!--keep-stack", dev_options.stop_stack,
                  "Leave PostgreSQL and NATS running on exit");
    dev->callback([&] {
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
                      "PostgreSQL URL of the writer role")
            ->envname("ORDO_DATABASE_URL")
            ->required();
        s->add_option("--nats-url", serve_options.nats_url, "NATS server URL")
            ->envname("ORDO_NATS_URL")
            ->required();
        s->add_option("--api-tokens", serve_options.api_tokens,
                      "Comma-separated bearer tokens for /v1 routes")
            ->envname("ORDO_API_TOKENS");
        s->add_flag("--insecure-no-auth", serve_options.insecure_no_auth,
                    "Serve /v1 routes without tokens");
        s->add_option("--pool-size", serve_options.pool_size, "Database connections")
            ->envname("ORDO_DB_POOL_SIZE")
            ->check(CLI::Range(1, 256))
            ->capture_default_str();
    }
    serve_command->callback([&] {
        serve_options.component = "command";
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
                     "PostgreSQL URL of the writer role")
        ->envname("ORDO_DATABASE_URL")
        ->required();
    serve_projector->add_option("--nats-url", projector_options.nats_url, "NATS server URL")
        ->envname("ORDO_NATS_URL")
        ->required();
    serve_projector->add_option("--partitions", projector_options.partitions, "Partitions (P)")
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    serve_projector->add_option("--stream", projector_options.stream, "JetStream stream")
        ->envname("ORDO_NATS_STREAM")
        ->capture_default_str();
    serve_projector
        ->add_option("--subject-prefix", projector_options.subject_prefix, "Subject prefix")
        ->envname("ORDO_NATS_SUBJECT_PREFIX")
        ->capture_default_str();
    serve_projector->callback([&] {
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
                     "PostgreSQL URL of the writer role")
        ->envname("ORDO_DATABASE_URL")
        ->required();
    serve_relay->add_option("--nats-url", relay_options.nats_url, "NATS server URL")
        ->envname("ORDO_NATS_URL")
        ->required();
    serve_relay->add_option("--partitions", relay_options.partitions, "Partitions (P)")
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
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
    serve_relay->callback([&] {
        rc = app::run_relay(relay_options, platform::Logger::stderr_logger(
                                               "relay", platform::parse_log_level(log_level)));
    });

    auto* serve_query = serve->add_subcommand("query", "The query API (REST) on the reader role");
    app::ServeOptions query_options;
    query_options.address = "127.0.0.1:8081";
    int query_partitions = 16;
    serve_query->add_option("--address", query_options.address, "host:port to listen on")
        ->envname("ORDO_QUERY_ADDR")
        ->capture_default_str();
    serve_query
        ->add_option("--database-url", query_options.database_url,
                     "PostgreSQL URL of the reader role")
        ->envname("ORDO_READER_URL")
        ->required();
    serve_query->add_option("--nats-url", query_options.nats_url, "NATS server URL (for /readyz)")
        ->envname("ORDO_NATS_URL")
        ->required();
    serve_query
        ->add_option("--api-tokens", query_options.api_tokens,
                     "Comma-separated bearer tokens for /v1 routes")
        ->envname("ORDO_API_TOKENS");
    serve_query->add_flag("--insecure-no-auth", query_options.insecure_no_auth,
                          "Serve /v1 routes without tokens");
    serve_query->add_option("--partitions", query_partitions, "Partitions (P) of the projections")
        ->envname("ORDO_PARTITIONS")
        ->check(CLI::Range(1, 1024))
        ->capture_default_str();
    serve_query->add_option("--pool-size", query_options.pool_size, "Database connections")
        ->envname("ORDO_DB_POOL_SIZE")
        ->check(CLI::Range(1, 256))
        ->capture_default_str();
    serve_query->callback([&] {
        query_options.component = "query";
        rc = app::run_query(
            query_options, query_partitions,
            platform::Logger::stderr_logger("query", platform::parse_log_level(log_level)));
    });

    CLI11_PARSE(cli, argc, argv);
    return rc;
}
