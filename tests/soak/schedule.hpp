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
// others hit the shared servers. Some apply to one topology only: the single-server stack
// (deploy/stack.sh) has one nats-server and one PostgreSQL to stop, the highly available
// cluster (deploy/cluster.sh) a node of three and a primary with a standby.
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
    kNatsNode,      // cluster: one NATS node of three SIGKILLed, started again
    kPgFailover,    // cluster: the primary's Patroni and PostgreSQL SIGKILLed (its machine
                    // lost): the standby is promoted; the old primary rejoins as standby
};

enum class Topology { kSingle, kCluster };

// Whether a fault kind can be done to a stack of that topology.
bool applies_to(FaultKind kind, Topology topology);
// How many targets a fault picks one of: two instances of a service, three NATS nodes.
int targets_of(FaultKind kind);

// The service kinds the soak runs two instances of.
inline constexpr std::string_view kServices[] = {"command", "query", "relay", "projector", "sagas"};

// One kind of fault as the command line names it: "kill:relay", "pause:command", "clock:sagas",
// "nats-restart", "nats-kill", "pg-fast", "pg-immediate", "pg-terminate", "webhook-down",
// "slow-sink", "nats-disk-full", "nats-node", "pg-failover".
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
    int instance = 0;  // which target: a service's instance (0, 1), a NATS node (0-2)
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

// One attempt of a command that got no usable answer: when it ended, and its status (0: none).
struct FailedAttempt {
    Millis at;
    int status = 0;
};

// How long an event took from its append (recorded_at) to being stored in JetStream, and
// when it was appended, on the soak's clock.
struct PublishDelay {
    Millis recorded;
    Millis delay;
};

// The longest publish delay of the events appended from a fault's start to the next fault's:
// how long publishing stalled under it.
Millis longest_publish_delay(const std::vector<PublishDelay>& delays, Millis began,
                             Millis next_began);

// What clients saw of one fault: the longest outage that began while it was the latest fault
// (from its start to the next fault's start, `next_began`), and how long after the fault
// ended the last of those outages went on (the time to recover).
struct OutageFigures {
    Millis longest{0};
    Millis recovered_after{0};
    // Attempts that failed from the fault's start to the next fault's: answered 503, and
    // without an answer (timeouts, refused connections) or with a 502 or 504.
    int answered_503 = 0;
    int other_failures = 0;
};
// `t` as seconds with one decimal, "12.3 s", for the soak's lines and tables.
std::string seconds_text(Millis t);

OutageFigures outages_of_fault(const std::vector<Outage>& outages,
                               const std::vector<FailedAttempt>& failed, Millis began, Millis ended,
                               Millis next_began);

}  // namespace ordo::soak
