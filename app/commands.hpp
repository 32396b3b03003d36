#pragma once

#include <string>
#include <vector>

#include "platform/log.hpp"

// The `ordo` binary's subcommands. Only this layer reads configuration and knows every
// component; each subcommand wires the pieces it runs.
namespace ordo::app {

int run_migrate(const std::string& migrator_url, const platform::Logger& log);

struct DevOptions {
    std::string data_dir;      // the stack's folder (Postgres cluster, NATS store)
    std::string stack_script;  // deploy/stack.sh
    bool fresh = false;        // wipe the data first
    bool stop_stack = true;    // stop Postgres and NATS on exit
    std::vector<std::string> services{"command", "query", "relay",
                                      "projector"};  // which `ordo serve` components run
};

struct ServeOptions {
    std::string component = "command";
    std::string address = "127.0.0.1:8080";
    std::string database_url;
    std::string nats_url;
    std::string api_tokens;  // comma-separated
    bool insecure_no_auth = false;
    std::size_t pool_size = 16;
};

int run_serve(const ServeOptions& options, const platform::Logger& log);

// `ordo serve query`: the Query API, on the reader role.
int run_query(const ServeOptions& options, int partitions, const platform::Logger& log);

struct ProjectorOptions {
    std::string address = "127.0.0.1:8091";  // health and metrics
    std::string database_url;
    std::string nats_url;
    int partitions = 16;
    std::string stream = "ORDO_EVENTS";
    std::string subject_prefix = "ordo.events";
};

int run_projector(const ProjectorOptions& options, const platform::Logger& log);

// `ordo serve relay`: the event store's relay to JetStream (eventstore::Relay).
struct RelayServeOptions {
    std::string address = "127.0.0.1:8090";  // health and metrics
    std::string database_url;
    std::string nats_url;
    int partitions = 16;
    std::string stream = "ORDO_EVENTS";
    std::string subject_prefix = "ordo.events";
    int duplicate_window_seconds = 120;
    int max_age_hours = 168;
};

int run_relay(const RelayServeOptions& options, const platform::Logger& log);

int run_dev(const DevOptions& options, const platform::Logger& log);

}  // namespace ordo::app
