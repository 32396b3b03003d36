// The soak's fault plan and its figures, as pure logic: which fault comes when (seeded, so a
// run can be replayed), and how long clients saw the API unavailable around each fault.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ordo::soak {

using Millis = std::chrono::milliseconds;

// The fault kinds. A service fault hits one instance of that service kind (the target); the
// others hit the shared servers.
enum class FaultKind {
    kKill,   // SIGKILL a service instance; it is started again after the fault
    kPause,  // SIGSTOP a service instance for the fault's length, then SIGCONT (a gray failure)
    kClock,  // a service instance's wall clock jumped 5 minutes forward, then back
    kNatsRestart,   // nats-server stopped cleanly, started again
    kNatsKill,      // nats-server SIGKILLed, started again
    kPgFast,        // PostgreSQL fast shutdown, started again
    kPgImmediate,   // PostgreSQL's postmaster SIGKILLed (immediate), started again
    kPgTerminate,   // pg_terminate_backend of every service connection to the soak's database
    kWebhookDown,   // the webhook receiver SIGKILLed, started again
    kSlowSink,      // the webhook receiver holds each delivery, some past the sender's timeout
    kNatsDiskFull,  // the filesystem of the NATS store filled up, then freed
};

// The service kinds the soak runs two instances of.
inline constexpr std::string_view kServices[] = {"command", "query", "relay", "projector", "sagas"};

// One kind of fault as the command line names it: "kill:relay", "pause:command", "clock:sagas",
// "nats-restart", "nats-kill", "pg-fast", "pg-immediate", "pg-terminate", "webhook-down",
// "slow-sink", "nats-disk-full".
struct FaultSpec {
    FaultKind kind;
    std::string service;  // for kill, pause and clock
    std::string name() const;
};

// Every fault kind there is, in a fixed order.
std::vector<FaultSpec> all_fault_specs();
// "all", "none", or a comma-separated list of names; a name prefixed with '-' removes that
// kind (e.g. "all,-pg-immediate"). nullopt and `error` set for an unknown name.
std::optional<std::vector<FaultSpec>> parse_fault_specs(std::string_view text, std::string& error);

struct PlannedFault {
    Millis at;      // from the start of the load
    Millis length;  // how long the fault lasts before the thing is brought back
    FaultSpec spec;
    int instance = 0;  // which of the two instances, for service faults
};

struct PlanOptions {
    std::uint64_t seed = 1;
    Millis duration{120'000};  // faults start within the load's duration
    Millis min_gap{2'000};     // quiet time after a fault ends before the next starts
    Millis max_gap{5'000};
    Millis min_length{500};
    Millis max_length{3'000};
};

// The faults of a run, one after another, never two at once: a shuffled round of every kind
// first (so a run long enough has each at least once), then kinds at random. The same seed
// and options give the same plan.
std::vector<PlannedFault> plan_faults(const std::vector<FaultSpec>& kinds,
                                      const PlanOptions& options);

// A stretch during which one client's command got no answer but 503s, timeouts or refused
// connections: from its first failed attempt to the answer that ended it.
struct Outage {
    Millis from;
    Millis to;
};

// What clients saw of one fault: the longest outage that began while it was the latest fault
// (from its start to the next fault's start, `next_began`), and how long after the fault
// ended the last of those outages went on (the time to recover).
struct OutageFigures {
    Millis longest{0};
    Millis recovered_after{0};
};
// `t` as seconds with one decimal, "12.3 s", for the soak's lines and tables.
std::string seconds_text(Millis t);

OutageFigures outages_of_fault(const std::vector<Outage>& outages, Millis began, Millis ended,
                               Millis next_began);

}  // namespace ordo::soak
