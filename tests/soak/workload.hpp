// The soak's clients: a mixed workload through the public REST API at a set rate, every
// command with an Idempotency-Key and retried as a real client would, and the client's own
// log of what was acknowledged.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "tests/soak/schedule.hpp"

namespace ordo::soak {

struct WorkloadOptions {
    std::uint64_t seed = 1;
    int clients = 4;
    double rate = 20;  // commands and reads per second, over all clients
    Millis duration{120'000};
    // A command still unanswered this long after its first attempt is given up (and logged
    // as unknown: its effect may or may not have happened, but at most once).
    Millis give_up{180'000};
    int skus = 20;      // contended: orders of up to 5 lines over these
    int accounts = 10;  // and these
};

// One logical command, as the client logged it.
struct CommandRecord {
    std::string kind;  // receipt, deposit, order, cancel
    std::string key;   // Idempotency-Key
    std::string path;
    nlohmann::json body;
    // 2xx: acknowledged. 409 on a cancel: refused (the order had ended). 0: given up.
    int status = 0;
    nlohmann::json answer;  // the body of the answer that ended it
    int attempts = 0;
    Millis first_sent{0};
    Millis ended{0};
};

struct WorkloadResult {
    std::vector<CommandRecord> commands;
    std::vector<Outage> outages;  // per client, stretches without an answer
    // Every attempt of a command that a client had to make again: when, and its status (503,
    // 502, 504; 0 for a timeout or a refused connection).
    std::vector<FailedAttempt> failed_attempts;
    // Answers no client should ever see: 500s, and 4xx for well-formed commands.
    std::vector<std::string> unexpected;
    std::int64_t reads = 0, reads_lagging = 0, reads_failed = 0;
    Millis load_time{0};
};

// Runs the clients against the two command and two query instances (each client prefers
// one and turns to the other when it gets no answer) until `duration` has passed and every
// command has ended; `now()` is the soak's clock.
WorkloadResult run_workload(const WorkloadOptions& options,
                            const std::vector<std::uint16_t>& command_ports,
                            const std::vector<std::uint16_t>& query_ports,
                            const std::function<Millis()>& now);

}  // namespace ordo::soak
