#pragma once

// The vocabulary and fold every saga process shares.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "domain/commands.hpp"
#include "domain/orders.hpp"
#include "domain/schema.hpp"

// A process (a saga, or one context's reactor in choreography) is an event-sourced stream:
// its state is a fold over its events, and the events are its audit log. This file holds
// the vocabulary every process shares — steps with attempts, outcomes, deadlines, facts
// learned from other contexts, the end — and the fold. Pure: no IO, no clock; times are
// milliseconds since the epoch, passed in.
namespace ordo::sagas {

// action: compensable work before the pivot (reserve, authorize).
// compensation: undoes an action (release, void); retried until it succeeds.
// pivot: the decision point (confirm or cancel the order).
// forward: work after the pivot (commit, capture); retried until it succeeds.
enum class StepKind { kAction, kCompensation, kPivot, kForward };
enum class StepStatus { kPending, kSucceeded, kRejected, kTimedOut, kAbandoned, kFailed };

std::string_view to_string(StepKind kind);
std::string_view to_string(StepStatus status);

// One failed attempt of a step, kept for the saga's timeline.
struct AttemptFailure {
    int attempt = 0;
    std::int64_t at_ms = 0;
    std::int64_t retry_at_ms = 0;
    std::string error;
    bool operator==(const AttemptFailure&) const = default;
};

struct Step {
    // A step keeps its last failures only: a compensation retried for hours must not grow
    // the state without bound.
    static constexpr std::size_t kMaxFailuresKept = 10;

    std::string name;
    StepKind kind = StepKind::kAction;
    domain::InternalCommand command;
    StepStatus status = StepStatus::kPending;
    int attempts = 0;  // attempts whose outcome is recorded
    std::int64_t scheduled_ms = 0;
    std::int64_t finished_ms = 0;          // 0 while pending
    std::int64_t retry_at_ms = 0;          // next attempt not before; 0: at once
    std::int64_t deadline_ms = 0;          // 0: none
    std::string error;                     // last failure or the rejection
    std::vector<AttemptFailure> failures;  // the last kMaxFailuresKept, oldest first

    bool pending() const { return status == StepStatus::kPending; }
    bool operator==(const Step&) const = default;
};

struct Deadline {
    std::string name;
    std::int64_t due_ms = 0;
    bool reached = false;
    bool operator==(const Deadline&) const = default;
};

struct OrderInfo {
    std::string order_id;
    std::string customer_id;
    std::string account_id;
    std::vector<domain::orders::OrderLine> lines;
    std::int64_t total = 0;
    bool operator==(const OrderInfo&) const = default;
};

enum class ProcessStatus { kRunning, kCompleted, kCompensated, kFailed };
std::string_view to_string(ProcessStatus status);

// --- events -----------------------------------------------------------------------------

// Version 2 (as FactPublished's): the order's lines in OrderPlaced version 2's shape, prices
// with their currency; upcast from version 1 by order_lines_v1_to_v2 below.
struct ProcessStarted {
    static constexpr std::string_view kType = "ProcessStarted";
    static constexpr int kVersion = 2;
    OrderInfo order;
    std::int64_t at_ms = 0;
};
// Something another context did, that this process reacts to: "order_cancellation_requested",
// "order_confirmed", "order_cancelled", "stock_allocated", "stock_allocation_failed",
// "payment_secured", "payment_declined". `reason` carries a cancel reason where there is one.
struct FactObserved {
    static constexpr std::string_view kType = "FactObserved";
    std::string fact;
    std::string reason;
    std::int64_t at_ms = 0;
};
struct StepScheduled {
    static constexpr std::string_view kType = "StepScheduled";
    std::string name;
    StepKind kind = StepKind::kAction;
    domain::InternalCommand command;  // stored as domain::encode_command's JSON
    std::int64_t deadline_ms = 0;
    std::int64_t at_ms = 0;
};
struct StepSucceeded {
    static constexpr std::string_view kType = "StepSucceeded";
    std::string name;
    int attempt = 0;
    std::int64_t at_ms = 0;
};
// A business "no": never retried.
struct StepRejected {
    static constexpr std::string_view kType = "StepRejected";
    std::string name;
    int attempt = 0;
    std::string code;
    std::string message;
    std::int64_t at_ms = 0;
};
// A transient failure: the step is tried again from `retry_at_ms`.
struct StepAttemptFailed {
    static constexpr std::string_view kType = "StepAttemptFailed";
    std::string name;
    int attempt = 0;
    std::string error;
    std::int64_t retry_at_ms = 0;
    std::int64_t at_ms = 0;
};
// Out of attempts.
struct StepGaveUp {
    static constexpr std::string_view kType = "StepGaveUp";
    std::string name;
    int attempts = 0;
    std::string error;
    std::int64_t at_ms = 0;
};
// A pending step that will not be tried again (the process is compensating).
struct StepAbandoned {
    static constexpr std::string_view kType = "StepAbandoned";
    std::string name;
    std::int64_t at_ms = 0;
};
struct DeadlineSet {
    static constexpr std::string_view kType = "DeadlineSet";
    std::string name;
    std::int64_t due_ms = 0;
};
// A deadline passed: a step's deadline ("step:<name>") times the step out if it is pending.
struct DeadlineReached {
    static constexpr std::string_view kType = "DeadlineReached";
    std::string name;
    std::int64_t at_ms = 0;
};
struct CompensationStarted {
    static constexpr std::string_view kType = "CompensationStarted";
    std::string reason;  // a cancel reason of the orders domain
    std::int64_t at_ms = 0;
};
// A fact this process tells the other contexts (choreography): "stock_allocated",
// "stock_allocation_failed", "payment_secured", "payment_declined". Stored with the fact's
// own event type (StockAllocated, ...) so that reactors subscribe by type.
struct FactPublished {
    static constexpr int kVersion = 2;
    std::string fact;
    std::string reason;
    OrderInfo order;
    std::int64_t at_ms = 0;
};
struct ProcessEnded {
    static constexpr std::string_view kType = "ProcessEnded";
    ProcessStatus status = ProcessStatus::kCompleted;
    std::string reason;
    std::int64_t at_ms = 0;
};

using Event = std::variant<ProcessStarted, FactObserved, StepScheduled, StepSucceeded, StepRejected,
                           StepAttemptFailed, StepGaveUp, StepAbandoned, DeadlineSet,
                           DeadlineReached, CompensationStarted, FactPublished, ProcessEnded>;
using Events = std::vector<Event>;

// The event type a published fact is stored under, and back.
std::string published_type(std::string_view fact);
std::optional<std::string> published_fact(std::string_view type);

std::string event_type(const Event& event);
nlohmann::json encode_payload(const Event& event);
// nullopt for an unknown type or a malformed payload; never throws.
std::optional<Event> decode(std::string_view type, const nlohmann::json& payload);

// Every event type a process writes (a published fact under each of its types), with its
// current schema version, and the upcasters of their older versions.
std::vector<domain::EventSchema> event_schemas();
std::vector<domain::Upcaster> upcasters();
// ProcessStarted and the published facts, 1 -> 2: the embedded order's lines as
// domain::lines_v1_to_v2 upcasts them.
nlohmann::json order_lines_v1_to_v2(nlohmann::json payload);

// --- state ------------------------------------------------------------------------------

struct State {
    bool started = false;
    OrderInfo order;
    std::int64_t started_ms = 0;
    std::vector<Step> steps;  // in the order they were scheduled
    std::vector<Deadline> deadlines;
    std::set<std::string> facts;      // observed
    std::string fact_reason;          // the reason of the last observed fact that had one
    std::set<std::string> published;  // facts told to others
    bool compensating = false;
    std::string compensation_reason;
    std::int64_t compensation_started_ms = 0;
    ProcessStatus status = ProcessStatus::kRunning;
    std::string end_reason;
    std::int64_t ended_ms = 0;

    bool ended() const { return status != ProcessStatus::kRunning; }
    const Step* step(std::string_view name) const;
    bool has(std::string_view fact) const { return facts.contains(std::string{fact}); }
};

State evolve(State state, const Event& event);
State fold(const Events& events);

}  // namespace ordo::sagas
