// The soak's checker: once the load has stopped and the system has settled, everything the
// clients were told is checked against the store, the read models and JetStream.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "tests/soak/schedule.hpp"
#include "tests/soak/workload.hpp"

namespace ordo::testing {
class TestDatabase;
}

namespace ordo::soak {

// A fault as it happened, on the soak's clock.
struct FaultRecord {
    PlannedFault planned;
    Millis began{0};
    Millis ended{0};
    std::string error;   // why it could not be done or undone; empty when it went as planned
    std::string remedy;  // what undoing it took beyond the undo itself (SoakStack::end)
};

struct CheckResult {
    std::vector<std::string> violations;
    Millis settled_after{-1};  // from the end of the load; -1: never settled within the bound
    std::int64_t events = 0;
    std::int64_t lost = 0;        // acknowledged commands without their event
    std::int64_t duplicated = 0;  // commands whose event is stored more than once
    std::int64_t jetstream_messages = 0;
    std::int64_t webhook_events = 0;      // stored events of the types the webhook forwards
    std::int64_t webhook_deliveries = 0;  // deliveries the receiver logged, redeliveries too
    // Per JetStream message: when its event was appended (recorded_at, wall clock) and how
    // long until the stream stored it.
    std::vector<std::pair<std::chrono::system_clock::time_point, Millis>> publish_delays;
};

// What the webhook receiver is to have seen: the event types forwarded (comma-separated, as
// for ORDO_WEBHOOK_EVENT_TYPES) and its log, one webhook-id per delivery.
struct WebhookExpectation {
    std::string event_types;
    std::string log;
};

// Waits up to `settle_bound` for the system to settle (every order ended with its saga, the
// relay and every projection at the head, every invariant holding), then checks: each
// acknowledged command's event stored exactly once (a refused one's not at all, a given-up
// one's at most once); no command-made event that no client sent; every API invariant;
// JetStream holding every event once per Nats-Msg-Id; every event of the webhook's types
// delivered at least once and nothing else delivered (redeliveries are at-least-once
// delivery, counted: the receiver deduplicates by webhook-id); no dead letter. A violation
// names the streams or commands and the faults around them.
// `db` is the database the services ran on (and the store's first shard), `second_shard` the
// second shard's on a sharded store, else null; `stream` their JetStream stream and
// `subjects` its subjects (SoakStack::subjects).
CheckResult check(const testing::TestDatabase& db, const testing::TestDatabase* second_shard,
                  const std::string& stream, const std::string& subjects,
                  const WebhookExpectation& webhook, const WorkloadResult& work,
                  const std::vector<FaultRecord>& faults, Millis settle_bound,
                  const std::function<Millis()>& now);

// Every read model row for row against a fresh offline rebuild (`ordo rebuild` of each
// projection, swapped in) from the same store; call with every projector stopped. Returns
// the differences, a few rows of each table that differs. `without` names, per table, columns
// left out of the comparison (store positions, after a partition moved between shards).
std::vector<std::string> differences_from_rebuild(
    const testing::TestDatabase& db, int partitions,
    const std::map<std::string, std::vector<std::string>>& without = {});

}  // namespace ordo::soak
