#pragma once

// Order fulfillment as sagas, orchestrated or choreographed.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "sagas/process.hpp"

// Order fulfillment, in two shapes over the same process vocabulary:
//
// - orchestration: one process manager per order (`saga.fulfillment-<order_id>`) reserves
//   every line and authorizes the total in parallel, then confirms the order (the pivot),
//   then commits the reservations and captures the payment; a rejection, a step past its
//   deadline or the customer's cancel before the pivot compensates (releases and voids, in
//   parallel) and cancels the order.
// - choreography: no process manager. Each context keeps a small reactor per order that
//   reacts to the others' events: inventory reserves on OrderPlaced and publishes
//   StockAllocated or StockAllocationFailed; payments authorizes on StockAllocated and
//   publishes PaymentSecured or PaymentDeclined; orders confirms on PaymentSecured or
//   cancels on a failure, a customer request or its deadline; inventory and payments then
//   commit and capture on OrderConfirmed, or release and void on OrderCancelled.
//
// Pure: the runner feeds in what happened and the time, and appends what comes out.
namespace ordo::sagas {

enum class Mode { kOrchestration, kChoreography };
std::string_view to_string(Mode mode);
std::optional<Mode> parse_mode(std::string_view text);

enum class ProcessKind { kFulfillment, kInventory, kPayments, kOrders };

// The stream category of a kind of process, and the process of a stream.
std::string_view category(ProcessKind kind);
std::string stream_of(ProcessKind kind, std::string_view order_id);
struct ProcessId {
    ProcessKind kind;
    std::string order_id;
};
std::optional<ProcessId> parse_stream(std::string_view stream);
// The categories the processes of a mode write.
std::vector<std::string> process_categories(Mode mode);

struct RetryPolicy {
    int max_attempts = 8;
    std::int64_t base_ms = 100;
    std::int64_t cap_ms = 2'000;
    // Exponential backoff with "equal jitter": half the delay fixed, half random;
    // `jitter` is in [0, 1).
    std::int64_t delay_ms(int attempt, double jitter) const;
};

struct Policy {
    std::int64_t step_timeout_ms = 10'000;         // orchestration: reserve and authorize
    std::int64_t fulfillment_timeout_ms = 30'000;  // choreography: the orders reactor's deadline
    RetryPolicy actions{8, 100, 2'000};
    // Compensations and the steps after the pivot must happen: many more attempts.
    RetryPolicy settlements{40, 100, 5'000};
    const RetryPolicy& retries(StepKind kind) const {
        return kind == StepKind::kAction ? actions : settlements;
    }
};

// What an event of another context tells the saga processes. A new order's processes
// start in `placing`, the mode of the deployment; every later event of an order goes to the
// processes it already has, which run in `running` (nullopt: it has none). So switching the
// mode changes only the orders placed after the switch, and orders in flight finish as
// they started. An OrderPlaced that does not decode (a shape this build cannot read) throws
// std::invalid_argument: dropped, its order would wait for ever; thrown, the intake parks it
// as a dead letter to retry once a deploy can read it.
struct Delivery {
    ProcessKind process;
    std::string order_id;
    Events events;
};
std::vector<Delivery> route(Mode placing, std::optional<Mode> running, std::string_view event_type,
                            const nlohmann::json& payload, std::int64_t at_ms);

// The process's next events at `now_ms`: deadlines that passed, steps to schedule,
// compensation, facts to publish, its end. Folding them in and asking again yields nothing.
Events advance(ProcessKind kind, const State& state, const Policy& policy, std::int64_t now_ms);

// The outcome of one attempt of a step, as events. CommandNotSent: the command side refused
// to start the command, so it certainly did nothing; that is no attempt and records
// nothing: the step stays due.
Events record_attempt(const Step& step, int attempt, const domain::CommandOutcome& outcome,
                      const Policy& policy, std::int64_t now_ms, double jitter);

// Steps whose next attempt is due at `now_ms`.
std::vector<Step> due_steps(const State& state, std::int64_t now_ms);
// When the process next needs attention (a retry or a deadline); nullopt when never.
std::optional<std::int64_t> next_wake_ms(const State& state);

// The saga view of API.md: one order's saga, from its orchestration process or from the
// reactors of choreography.
struct SagaView {
    std::string saga_id;
    std::string order_id;
    Mode mode = Mode::kOrchestration;
    std::string status;  // running, completed, compensated, failed
    // Each step: its process (the stream), kind, status, attempts with the failures kept,
    // times, deadline and error.
    nlohmann::json steps = nlohmann::json::array();
    // Each process: its stream, start and end, why it ended, its compensation and
    // deadlines. What a timeline draws besides the steps.
    nlohmann::json processes = nlohmann::json::array();
};
SagaView saga_view(Mode mode, std::string_view order_id,
                   const std::vector<std::pair<ProcessKind, State>>& processes);

}  // namespace ordo::sagas
