// ordo-soak-receiver: the webhook receiver the soak's projectors deliver to, as a process of
// its own so that the soak can kill it (the receiver down) and slow it (a slow sink).
//
// Each delivery's webhook-id (the event's id) is appended to the log file, one line per
// delivery, before it is answered: the log is what the receiver saw, redeliveries included,
// and a kill loses no line that was answered 200. SIGUSR1 makes it slow (each delivery is
// held for a random time between --slow-min-ms and --slow-max-ms before its answer, so some
// outlast the projector's timeout and are sent again), SIGUSR2 makes it prompt again, SIGTERM
// stops it.
#include <CLI/CLI.hpp>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <mutex>
#include <random>
#include <thread>

#include <nlohmann/json.hpp>

#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http_server.hpp"

int main(int argc, char** argv) try {
    CLI::App app{"The soak's webhook receiver"};
    int port = 0, slow_min_ms = 200, slow_max_ms = 2000;
    std::string log_path;
    app.add_option("--port", port, "Port to listen on (loopback)")
        ->required()
        ->check(CLI::Range(1, 65535));
    app.add_option("--log", log_path, "File each delivery's webhook-id is appended to")->required();
    app.add_option("--slow-min-ms", slow_min_ms, "Shortest hold of a delivery when slow")
        ->check(CLI::Range(0, 60'000));
    app.add_option("--slow-max-ms", slow_max_ms, "Longest hold of a delivery when slow")
        ->check(CLI::Range(0, 60'000));
    CLI11_PARSE(app, argc, argv);
    if (slow_min_ms > slow_max_ms) {
        std::fprintf(stderr, "ordo-soak-receiver: --slow-min-ms above --slow-max-ms\n");
        return 2;
    }

    // The signals are taken by sigwait below; blocked before any thread starts, so that every
    // thread inherits the mask.
    sigset_t signals;
    sigemptyset(&signals);
    for (int s : {SIGUSR1, SIGUSR2, SIGTERM, SIGINT}) sigaddset(&signals, s);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    const int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log < 0) {
        std::perror(("ordo-soak-receiver: " + log_path).c_str());
        return 1;
    }
    std::atomic<bool> slow{false};
    std::mutex pick_mutex;
    std::mt19937 pick{std::random_device{}()};

    ordo::platform::http::Router router;
    router.add(
        "POST", "/hook", ordo::platform::http::Access::open, [&](ordo::platform::http::Request& r) {
            auto id = r.header("webhook-id");
            if (!id || id->empty() || id->size() > 64 || id->find('\n') != std::string::npos) {
                return ordo::platform::http::Response::json(400, {{"error", "no webhook-id"}});
            }
            const auto line = *id + "\n";
            // One write of a short line to an O_APPEND file: whole, never interleaved.
            if (::write(log, line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
                return ordo::platform::http::Response::json(500, {{"error", "log write failed"}});
            }
            if (slow.load()) {
                int hold = 0;
                {
                    std::lock_guard lock{pick_mutex};
                    hold = std::uniform_int_distribution<int>{slow_min_ms, slow_max_ms}(pick);
                }
                std::this_thread::sleep_for(std::chrono::milliseconds{hold});
            }
            return ordo::platform::http::Response::json(200, {{"ok", true}});
        });
    router.add("GET", "/healthz", ordo::platform::http::Access::open,
               [](ordo::platform::http::Request&) {
                   return ordo::platform::http::Response::json(200, {{"status", "ok"}});
               });
    ordo::platform::http::ServerOptions options;
    options.port = static_cast<std::uint16_t>(port);
    options.component = "soak-receiver";
    ordo::platform::metrics::Registry metrics;
    ordo::platform::http::Server server{options, std::move(router),
                                        ordo::platform::Logger::null_logger(), metrics};
    server.start();
    for (;;) {
        int sig = 0;
        if (sigwait(&signals, &sig) != 0) continue;
        if (sig == SIGUSR1) {
            slow = true;
        } else if (sig == SIGUSR2) {
            slow = false;
        } else {
            break;
        }
    }
    server.stop(std::chrono::seconds(1));
    ::close(log);
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-soak-receiver: %s\n", e.what());
    return 1;
}
