// `ordo dev`: the local stack (PostgreSQL and NATS, through deploy/stack.sh) with every chosen
// `ordo serve` component on it, each restarted when it dies; one stop signal ends them all.
// `ordo dev --ha`: the same on the highly available cluster (deploy/cluster.sh), two
// instances of every component, the Command and Query APIs behind HAProxy.

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "app/subcommands.hpp"
#include "platform/core/comma_list.hpp"
#include "platform/core/config.hpp"

extern char** environ;

namespace ordo::app {
namespace {

// Children start with no signal blocked and the stop signals at their defaults: `ordo dev`
// blocks them for itself (sigtimedwait), and a blocked mask is inherited through exec, so a
// server that does not reset it (Patroni does not) would never see the SIGTERM that stops it.
pid_t spawn(const std::vector<std::string>& argv) {
    std::vector<char*> args;
    for (const auto& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    posix_spawnattr_t attributes;
    posix_spawnattr_init(&attributes);
    sigset_t none, defaults;
    sigemptyset(&none);
    sigemptyset(&defaults);
    for (int s : {SIGINT, SIGTERM, SIGHUP}) sigaddset(&defaults, s);
    posix_spawnattr_setsigmask(&attributes, &none);
    posix_spawnattr_setsigdefault(&attributes, &defaults);
    posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
    pid_t pid = 0;
    const int failed = posix_spawn(&pid, args[0], nullptr, &attributes, args.data(), environ);
    posix_spawnattr_destroy(&attributes);
    return failed != 0 ? -1 : pid;
}

int run_to_end(const std::vector<std::string>& argv) {
    pid_t pid = spawn(argv);
    if (pid < 0) return 127;
    int status = 0;
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

std::string self_path() {
    char buf[4096];
    auto n = readlink("/proc/self/exe", buf, sizeof buf - 1);
    if (n <= 0) return "ordo";
    return std::string(buf, static_cast<std::size_t>(n));
}

// ORDO_HA_<SERVICE>_ADDRS, as deploy/cluster.sh writes them into stack.env.
std::string ha_addresses_variable(const std::string& service) {
    std::string name = "ORDO_HA_";
    for (char c : service) name.push_back(static_cast<char>(std::toupper(c)));
    return name + "_ADDRS";
}

// The host:port list of a PostgreSQL URL (what lies between '@' and the next '/'), without
// the password.
std::string hosts_of(const std::string& url) {
    auto at = url.find('@');
    if (at == std::string::npos) return "?";
    auto slash = url.find('/', at);
    return url.substr(at + 1, slash == std::string::npos ? std::string::npos : slash - at - 1);
}

// Keeps the services running: restarts one that dies, with a growing pause.
struct Child {
    std::string name;
    std::vector<std::string> argv;
    pid_t pid = -1;
    int restarts = 0;
    std::chrono::steady_clock::time_point restart_at{};
};

}  // namespace

int run_dev(const DevOptions& options, const platform::Logger& log) {
    // A folder holds one kind of stack: the cluster's script in a single stack's folder would
    // share its secrets and nest its NATS stores in the single server's.
    if (const auto env_file = options.data_dir + "/stack.env";
        ::access(env_file.c_str(), F_OK) == 0) {
        const auto settings = platform::read_env_file(env_file);
        const auto it = settings.find("ORDO_STACK_TOPOLOGY");
        const bool cluster = it != settings.end() && it->second == "ha";
        if (cluster != options.ha) {
            log.error(options.ha ? "the data folder holds a single-server stack, not a cluster"
                                 : "the data folder holds a cluster; run ordo dev --ha",
                      {{"data_dir", options.data_dir}});
            return 2;
        }
    }
    if (options.ha && options.shards > 1) {
        log.error("ordo dev --ha runs one cluster: --shards is not for it yet");
        return 2;
    }
    ::setenv("ORDO_STACK_DIR", options.data_dir.c_str(), 1);
    ::setenv("ORDO_PG_SHARDS", std::to_string(options.shards).c_str(), 1);
    if (options.fresh && run_to_end({"/bin/bash", options.stack_script, "wipe"}) != 0) {
        log.error("could not wipe the data folder", {{"data_dir", options.data_dir}});
        return 1;
    }
    // Block the stop signals before anything starts, so none is lost; sigtimedwait takes them.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    // A closed terminal stops everything too: the services take SIGHUP as "reload", so
    // without this they would outlive the `ordo dev` that started them.
    sigaddset(&stop_signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

    if (run_to_end({"/bin/bash", options.stack_script, "start"}) != 0) {
        log.error("the local stack did not start", {{"script", options.stack_script}});
        return 1;
    }
    auto stop_stack = [&] {
        if (options.stop_stack) run_to_end({"/bin/bash", options.stack_script, "stop"});
    };
    platform::export_missing(platform::read_env_file(options.data_dir + "/stack.env"));

    if (int rc = run_migrate(*platform::env("ORDO_MIGRATOR_URL"), log); rc != 0) {
        stop_stack();
        return rc;
    }
    // Several shards: the first map spreads the partitions over the stack's clusters (each
    // migrated by it), unless it is written already. One: no map of several may be written
    // (its other shards' clusters would not run).
    std::vector<int> relayed_shards{0};  // the shards the map names, each with its relay
    if (options.shards == 1) {
        if (int rc = refuse_other_shard_count(*platform::env("ORDO_MIGRATOR_URL"), 1, log);
            rc != 0) {
            stop_stack();
            return rc;
        }
    } else {
        ShardsOptions shards{
            .database_url = *platform::env("ORDO_MIGRATOR_URL"),
            .shards = platform::comma_list(platform::env("ORDO_PG_SHARD_LOCATIONS").value_or("")),
            .if_absent = true};
        if (auto p = platform::env("ORDO_PARTITIONS")) shards.partitions = std::stoi(*p);
        if (static_cast<int>(shards.shards.size()) != options.shards) {
            log.error("the stack did not name a location for every shard",
                      {{"shards", options.shards}, {"locations", shards.shards}});
            stop_stack();
            return 1;
        }
        if (int rc = run_shards_init(shards, log); rc != 0) {
            log.error(
                "the shard map could not be written (a store that ran unsharded cannot be "
                "spread by a new map: start with --fresh; a map that has grown by `ordo "
                "shards add` is run by hand)");
            stop_stack();
            return rc;
        }
        try {
            relayed_shards = mapped_shards(shards.database_url);
        } catch (const std::exception& e) {
            log.error("the shard map could not be read", {{"error", e.what()}});
            stop_stack();
            return 1;
        }
    }
    const bool open_api = !platform::env("ORDO_API_TOKENS_FILE");
    if (open_api) {
        log.warn(
            "ORDO_API_TOKENS_FILE is not set: the /v1 routes accept requests without a token, "
            "on loopback only");
    }

    // The query service redirects the moved admin routes to wherever the Command API is.
    // Every child serves HTTPS when the TLS files are set, the Command API included.
    if (options.ha) {
        if (auto url = platform::env("ORDO_HA_COMMAND_URL"))
            ::setenv("ORDO_COMMAND_URL", url->c_str(), 0);
    } else if (!platform::env("ORDO_COMMAND_URL")) {
        auto address = platform::env("ORDO_COMMAND_ADDR").value_or("127.0.0.1:8080");
        const bool tls = platform::env("ORDO_TLS_CERT_FILE").value_or("") != "";
        if (tls || address.rfind("127.", 0) == 0) {  // plain http only on loopback
            ::setenv("ORDO_COMMAND_URL", ((tls ? "https://" : "http://") + address).c_str(), 1);
        }
    }

    // Spans go to the query service's built-in collector (the console's trace view) unless
    // a collector is named. Without tokens the collector needs none; with tokens, a telemetry
    // token goes in OTEL_EXPORTER_OTLP_HEADERS (docs/operations.md, "Console").
    if (!options.ha && open_api && !platform::env("OTEL_EXPORTER_OTLP_ENDPOINT") &&
        !platform::env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")) {
        auto address = platform::env("ORDO_QUERY_ADDR").value_or("127.0.0.1:8081");
        const bool tls = platform::env("ORDO_TLS_CERT_FILE").value_or("") != "";
        if (tls || address.rfind("127.", 0) == 0) {
            ::setenv("OTEL_EXPORTER_OTLP_ENDPOINT",
                     ((tls ? "https://" : "http://") + address).c_str(), 1);
        }
    }

    std::vector<Child> children;
    const auto exe = self_path();
    // A relay per shard the map names (one that moves emptied has nothing to publish), and
    // for a shard a move gives partitions while the stack runs, from then on: shard 0's health
    // port as configured, shard i's i above the sagas service's (8090, then 8093, 8094, ...
    // by default).
    const bool relay_per_shard = !options.ha && options.shards > 1 &&
                                 std::find(options.services.begin(), options.services.end(),
                                           "relay") != options.services.end();
    auto relay_of = [&](int shard) {
        auto address = platform::env("ORDO_RELAY_ADDR").value_or("127.0.0.1:8090");
        const auto colon = address.rfind(':');
        const int port = std::stoi(address.substr(colon + 1));
        return Child{
            "relay-" + std::to_string(shard),
            {exe, "serve", "relay", "--shard", std::to_string(shard), "--address",
             address.substr(0, colon + 1) + std::to_string(shard == 0 ? port : port + 2 + shard)}};
    };
    for (const auto& service : options.services) {
        std::vector<std::string> argv{exe, "serve", service};
        const bool serves_api = service == "command" || service == "query";
        if (serves_api && open_api) argv.push_back("--insecure-no-auth");
        if (service == "relay" && relay_per_shard) {
            for (int shard : relayed_shards) children.push_back(relay_of(shard));
            continue;
        }
        if (!options.ha) {
            children.push_back(Child{service, argv});
            continue;
        }
        // Two instances, on the addresses the cluster's HAProxy (command, query) and
        // monitoring expect.
        const auto variable = ha_addresses_variable(service);
        auto addresses = platform::comma_list(platform::env(variable.c_str()).value_or(""));
        if (addresses.size() != 2) {
            log.error("the cluster's settings name no two addresses for a service",
                      {{"service", service}, {"variable", variable}});
            stop_stack();
            return 1;
        }
        for (std::size_t i = 0; i < addresses.size(); ++i) {
            auto instance = argv;
            instance.push_back("--address");
            instance.push_back(addresses[i]);
            children.push_back(Child{service + "-" + std::to_string(i), instance});
        }
    }
    for (auto& c : children) c.pid = spawn(c.argv);
    if (options.monitoring && run_to_end({"/bin/bash", options.monitoring_script, "start"}) != 0) {
        log.error("Prometheus and Alertmanager did not start; the services run without them",
                  {{"script", options.monitoring_script}});
    }

    if (options.ha) {
        log.info("ordo dev --ha is up; Ctrl-C stops everything",
                 {{"command_api", platform::env("ORDO_HA_COMMAND_URL").value_or("?")},
                  {"query_api", platform::env("ORDO_HA_QUERY_URL").value_or("?")},
                  {"haproxy_stats", platform::env("ORDO_HA_STATS_URL").value_or("?")},
                  {"postgres", hosts_of(platform::env("ORDO_PG_ADMIN_URL").value_or(""))},
                  {"nats", platform::env("ORDO_NATS_URL").value_or("?")},
                  {"services", options.services},
                  {"data_dir", options.data_dir}});
    } else {
        log.info("ordo dev is up; Ctrl-C stops everything",
                 {{"postgres", "127.0.0.1:" + platform::env("ORDO_PG_PORT").value_or("?")},
                  {"shards", platform::env("ORDO_PG_SHARD_LOCATIONS").value_or("")},
                  {"nats", platform::env("ORDO_NATS_URL").value_or("?")},
                  {"services", options.services},
                  {"data_dir", options.data_dir}});
    }

    auto map_read_at = std::chrono::steady_clock::now();
    bool map_unread = false;  // the last look failed: said once, until one succeeds
    for (;;) {
        timespec tick{0, 200'000'000};
        int sig = sigtimedwait(&stop_signals, nullptr, &tick);
        if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP) break;
        if (relay_per_shard && std::chrono::steady_clock::now() >= map_read_at) {
            map_read_at = std::chrono::steady_clock::now() + std::chrono::seconds(2);
            try {
                for (int shard : mapped_shards(*platform::env("ORDO_MIGRATOR_URL"))) {
                    if (std::find(relayed_shards.begin(), relayed_shards.end(), shard) !=
                        relayed_shards.end())
                        continue;
                    relayed_shards.push_back(shard);
                    auto& added = children.emplace_back(relay_of(shard));
                    added.pid = spawn(added.argv);
                    log.info("the map names a new shard: its relay starts", {{"shard", shard}});
                }
                map_unread = false;
            } catch (const std::exception& e) {
                // The control database restarting, say: the next look finds the map.
                if (!map_unread) {
                    log.warn("the shard map could not be read; looking again every 2 s",
                             {{"error", e.what()}});
                }
                map_unread = true;
            }
        }
        int status = 0;
        pid_t done;
        while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
            for (auto& c : children) {
                if (c.pid != done) continue;
                c.pid = -1;
                ++c.restarts;
                auto pause =
                    std::chrono::milliseconds(std::min(30'000, 250 << std::min(c.restarts, 7)));
                c.restart_at = std::chrono::steady_clock::now() + pause;
                log.error(
                    "service exited; restarting",
                    {{"service", c.name},
                     {"status", WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status)},
                     {"restart_in_ms", pause.count()}});
            }
        }
        for (auto& c : children) {
            if (c.pid < 0 && std::chrono::steady_clock::now() >= c.restart_at)
                c.pid = spawn(c.argv);
        }
    }

    log.info("stopping");
    for (auto& c : children) {
        if (c.pid > 0) kill(c.pid, SIGTERM);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    for (auto& c : children) {
        while (c.pid > 0) {
            int status = 0;
            if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
                c.pid = -1;
            } else if (std::chrono::steady_clock::now() > deadline) {
                log.warn("service did not stop in time; killing it", {{"service", c.name}});
                kill(c.pid, SIGKILL);
                waitpid(c.pid, &status, 0);
                c.pid = -1;
            } else {
                std::this_thread::sleep_for(std::chrono::milliseconds(50));
            }
        }
    }
    if (options.monitoring) run_to_end({"/bin/bash", options.monitoring_script, "stop"});
    stop_stack();
    log.info("stopped");
    return 0;
}

}  // namespace ordo::app
