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

    CLI11_PARSE(cli, argc, argv);
    return rc;
}
