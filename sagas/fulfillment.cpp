// The fulfillment rules: what each process does next in orchestration and choreography, how events
// are routed to processes, process streams, the retry policy, and the saga view.

#include "sagas/fulfillment.hpp"

#include <algorithm>
#include <array>
#include <cstdio>
#include <ctime>
#include <stdexcept>

#include "domain/overloaded.hpp"
#include "platform/core/utc_time.hpp"

namespace ordo::sagas {
namespace {

namespace orders = domain::orders;

constexpr std::array<std::string_view, 4> kCategories = {
    "saga.fulfillment", "inventory.fulfillment", "payments.fulfillment", "orders.fulfillment"};

// Facts, as the processes name them.
constexpr std::string_view kCancellationRequested = "order_cancellation_requested";
constexpr std::string_view kOrderConfirmed = "order_confirmed";
constexpr std::string_view kOrderCancelled = "order_cancelled";
constexpr std::string_view kStockAllocated = "stock_allocated";
constexpr std::string_view kStockAllocationFailed = "stock_allocation_failed";
constexpr std::string_view kPaymentSecured = "payment_secured";
constexpr std::string_view kPaymentDeclined = "payment_declined";

constexpr std::string_view kFulfillmentDeadline = "fulfillment";

std::string reserve_step(const std::string& sku) {
    return "reserve:" + sku;
}

// The commands the steps send, from the order the process started with.
namespace inventory = domain::inventory;
namespace payments = domain::payments;

inventory::ReserveStock reserve(const OrderInfo& o, const orders::OrderLine& l) {
    return {l.sku, o.order_id, l.quantity};
}
inventory::ReleaseReservation release(const OrderInfo& o, const std::string& sku) {
    return {sku, o.order_id};
}
inventory::CommitReservation commit(const OrderInfo& o, const std::string& sku) {
    return {sku, o.order_id};
}
payments::AuthorizePayment authorize(const OrderInfo& o) {
    return {o.account_id, o.order_id, o.total};
}
payments::VoidAuthorization void_authorization(const OrderInfo& o) {
    return {o.account_id, o.order_id};
}
payments::CapturePayment capture(const OrderInfo& o) {
    return {o.account_id, o.order_id};
}
orders::ConfirmOrder confirm(const OrderInfo& o) {
    return {o.order_id};
}
orders::CancelOrder cancel(const OrderInfo& o, std::string_view reason) {
    return {o.order_id, std::string{reason}};
}

// Builds a process's next events, folding each into a working copy of the state so that
// later rules see what earlier ones decided.
class Planner {
   public:
    Planner(const State& state, std::int64_t now_ms) : state_{state}, now_ms_{now_ms} {}

    const State& state() const { return state_; }
    Events take() { return std::move(out_); }

    void emit(Event e) {
        state_ = evolve(std::move(state_), e);
        out_.push_back(std::move(e));
    }
    void schedule(std::string name, StepKind kind, domain::InternalCommand command,
                  std::int64_t deadline_ms = 0) {
        if (state_.step(name)) return;
        emit(StepScheduled{std::move(name), kind, std::move(command), deadline_ms, now_ms_});
    }
    void end(ProcessStatus status, std::string reason) {
        emit(ProcessEnded{status, std::move(reason), now_ms_});
    }
    void publish(std::string_view fact, std::string reason = "") {
        if (state_.published.contains(std::string{fact})) return;
        emit(FactPublished{std::string{fact}, std::move(reason), state_.order, now_ms_});
    }
    // Stops every pending step of a kind: the process no longer wants it.
    void abandon(StepKind kind) {
        std::vector<std::string> names;
        for (const auto& s : state_.steps) {
            if (s.kind == kind && s.pending()) names.push_back(s.name);
        }
        for (auto& n : names) emit(StepAbandoned{std::move(n), now_ms_});
    }
    // Compensates every action step, blind: a release or void of something never done is
    // harmless, and an attempt whose outcome was lost in a crash may well have taken effect.
    void compensate_actions() {
        std::vector<std::pair<std::string, domain::InternalCommand>> undo;
        for (const auto& s : state_.steps) {
            if (s.kind != StepKind::kAction) continue;
            if (const auto* r = std::get_if<inventory::ReserveStock>(&s.command)) {
                undo.emplace_back("release:" + r->sku, release(state_.order, r->sku));
            } else if (std::holds_alternative<payments::AuthorizePayment>(s.command)) {
                undo.emplace_back("void", void_authorization(state_.order));
            }
        }
        for (auto& [name, command] : undo) {
            schedule(name, StepKind::kCompensation, std::move(command));
        }
    }
    void start_compensation(std::string reason) {
        emit(CompensationStarted{std::move(reason), now_ms_});
        abandon(StepKind::kAction);
        compensate_actions();
    }
    // Times out what has passed its deadline.
    void reach_deadlines() {
        std::vector<std::string> due;
        for (const auto& s : state_.steps) {
            if (s.pending() && s.deadline_ms > 0 && s.deadline_ms <= now_ms_) {
                due.push_back("step:" + s.name);
            }
        }
        for (const auto& d : state_.deadlines) {
            if (!d.reached && d.due_ms <= now_ms_) due.push_back(d.name);
        }
        for (auto& name : due) emit(DeadlineReached{std::move(name), now_ms_});
    }

   private:
    State state_;
    std::int64_t now_ms_;
    Events out_;
};

struct StepSummary {
    std::size_t total = 0, succeeded = 0, pending = 0, rejected = 0, failed = 0;
    bool all_succeeded() const { return total > 0 && succeeded == total; }
    bool settled() const { return pending == 0; }
};

StepSummary summarize(const State& s, StepKind kind) {
    StepSummary sum;
    for (const auto& step : s.steps) {
        if (step.kind != kind) continue;
        ++sum.total;
        switch (step.status) {
            case StepStatus::kSucceeded:
                ++sum.succeeded;
                break;
            case StepStatus::kPending:
                ++sum.pending;
                break;
            case StepStatus::kRejected:
                ++sum.rejected;
                break;
            default:
                ++sum.failed;
                break;
        }
    }
    return sum;
}

std::string first_failure(const State& s, StepKind kind) {
    for (const auto& step : s.steps) {
        if (step.kind == kind && step.status != StepStatus::kSucceeded && !step.pending()) {
            return step.name + ": " + step.error;
        }
    }
    return "";
}

// Compensation settles: all undone → the process ends `done`; any that could not be → failed.
// Returns true when it ended.
bool settle_compensation(Planner& p, ProcessStatus done, const std::string& reason) {
    const auto undo = summarize(p.state(), StepKind::kCompensation);
    if (undo.rejected + undo.failed > 0) {
        p.end(ProcessStatus::kFailed,
              "compensation failed: " + first_failure(p.state(), StepKind::kCompensation));
        return true;
    }
    if (undo.pending == 0) {
        p.end(done, reason);
        return true;
    }
    return false;
}

// Steps after the pivot: all done → completed; one that cannot be done → failed.
void settle_forward(Planner& p) {
    const auto fwd = summarize(p.state(), StepKind::kForward);
    if (fwd.rejected + fwd.failed > 0) {
        p.end(ProcessStatus::kFailed,
              "could not finish: " + first_failure(p.state(), StepKind::kForward));
    } else if (fwd.all_succeeded()) {
        p.end(ProcessStatus::kCompleted, "");
    }
}

std::string reason_of_rejected_action(const State& s) {
    for (const auto& step : s.steps) {
        if (step.kind != StepKind::kAction) continue;
        if (step.status == StepStatus::kRejected) {
            return std::holds_alternative<inventory::ReserveStock>(step.command)
                       ? std::string{orders::kReasonInsufficientStock}
                       : std::string{orders::kReasonInsufficientFunds};
        }
    }
    for (const auto& step : s.steps) {
        if (step.kind == StepKind::kAction &&
            (step.status == StepStatus::kTimedOut || step.status == StepStatus::kFailed)) {
            return std::string{orders::kReasonTimeout};
        }
    }
    return "";
}

void advance_orchestration(Planner& p, const Policy& policy, std::int64_t now_ms) {
    const State& s = p.state();
    const OrderInfo& o = s.order;
    if (summarize(s, StepKind::kAction).total == 0 && !s.compensating) {
        if (s.has(kCancellationRequested)) {
            p.start_compensation(std::string{orders::kReasonCustomerRequest});
        } else {
            // Every line and the payment at once: the steps are independent.
            for (const auto& line : o.lines) {
                p.schedule(reserve_step(line.sku), StepKind::kAction, reserve(o, line),
                           now_ms + policy.step_timeout_ms);
            }
            p.schedule("authorize", StepKind::kAction, authorize(o),
                       now_ms + policy.step_timeout_ms);
        }
    }
    const Step* pivot = s.step("confirm");
    // The confirm gave up: every attempt failed, and any of them may have committed. The
    // order knows. A cancel either succeeds (it was not confirmed: compensate) or is
    // refused because it was (carry on as confirmed); nothing is undone before that.
    bool confirmed = pivot && pivot->status == StepStatus::kSucceeded;
    if (pivot && pivot->status == StepStatus::kFailed && !s.compensating) {
        const Step* asked = s.step("cancel");
        if (!asked) {
            p.schedule("cancel", StepKind::kPivot, cancel(o, orders::kReasonTimeout));
            return;
        }
        if (asked->pending()) return;
        if (asked->status == StepStatus::kRejected) {
            confirmed = true;
        } else if (asked->status != StepStatus::kSucceeded) {
            p.end(ProcessStatus::kFailed, "confirm: outcome unknown; cancel: " + asked->error);
            return;
        }
    }
    if (!s.compensating && !confirmed) {
        // Before the pivot anything may still stop the order; once the confirm is on its
        // way, only its own outcome decides.
        std::string reason;
        if (!pivot) {
            reason = reason_of_rejected_action(s);
            if (reason.empty() && s.has(kCancellationRequested)) {
                reason = orders::kReasonCustomerRequest;
            }
        } else if (pivot->status == StepStatus::kRejected) {
            reason = orders::kReasonCustomerRequest;  // the customer asked first
        } else if (pivot->status == StepStatus::kFailed) {
            reason = orders::kReasonTimeout;  // and the order is cancelled already
        }
        if (!reason.empty()) p.start_compensation(reason);
    }
    if (s.compensating) {
        // Undo first (in parallel), then cancel the order.
        const auto undo = summarize(s, StepKind::kCompensation);
        if (undo.rejected + undo.failed > 0 || undo.pending > 0) {
            settle_compensation(p, ProcessStatus::kCompensated, s.compensation_reason);
            return;
        }
        const Step* cancel_step = s.step("cancel");
        if (!cancel_step) {
            p.schedule("cancel", StepKind::kPivot, cancel(o, s.compensation_reason));
        } else if (cancel_step->status == StepStatus::kSucceeded) {
            p.end(ProcessStatus::kCompensated, s.compensation_reason);
        } else if (!cancel_step->pending()) {
            p.end(ProcessStatus::kFailed, "cancel: " + cancel_step->error);
        }
        return;
    }
    if (!summarize(s, StepKind::kAction).all_succeeded()) return;
    if (!pivot) {
        p.schedule("confirm", StepKind::kPivot, confirm(o));
        return;
    }
    if (!confirmed) return;
    if (summarize(s, StepKind::kForward).total == 0) {
        for (const auto& line : o.lines) {
            p.schedule("commit:" + line.sku, StepKind::kForward, commit(o, line.sku));
        }
        p.schedule("capture", StepKind::kForward, capture(o));
    }
    settle_forward(p);
}

void advance_inventory(Planner& p) {
    const State& s = p.state();
    const OrderInfo& o = s.order;
    if (summarize(s, StepKind::kAction).total == 0 && !s.compensating) {
        if (s.has(kOrderCancelled)) {
            p.start_compensation(s.fact_reason);
        } else {
            for (const auto& line : o.lines) {
                p.schedule(reserve_step(line.sku), StepKind::kAction, reserve(o, line));
            }
        }
    }
    if (!s.compensating) {
        const auto reserves = summarize(s, StepKind::kAction);
        if (reserves.rejected + reserves.failed > 0) {
            const auto reason = reason_of_rejected_action(s);
            p.publish(kStockAllocationFailed, reason);
            p.start_compensation(reason);
        } else if (s.has(kOrderCancelled)) {
            p.start_compensation(s.fact_reason);
        } else if (reserves.all_succeeded()) {
            p.publish(kStockAllocated);
        }
    }
    if (s.compensating) {
        // Once the allocation failed, the reactor still waits for the order's outcome.
        if (s.has(kOrderCancelled))
            settle_compensation(p, ProcessStatus::kCompensated, s.fact_reason);
        return;
    }
    if (s.has(kOrderConfirmed)) {
        for (const auto& line : o.lines) {
            p.schedule("commit:" + line.sku, StepKind::kForward, commit(o, line.sku));
        }
        settle_forward(p);
    }
}

void advance_payments(Planner& p) {
    const State& s = p.state();
    const OrderInfo& o = s.order;
    if (!s.compensating && s.has(kOrderCancelled)) p.start_compensation(s.fact_reason);
    if (s.compensating) {
        settle_compensation(p, ProcessStatus::kCompensated, s.compensation_reason);
        return;
    }
    if (s.has(kStockAllocated)) p.schedule("authorize", StepKind::kAction, authorize(o));
    if (const Step* step = s.step("authorize")) {
        if (step->status == StepStatus::kSucceeded) {
            p.publish(kPaymentSecured);
        } else if (step->status == StepStatus::kRejected) {
            p.publish(kPaymentDeclined, std::string{orders::kReasonInsufficientFunds});
        } else if (!step->pending()) {
            p.publish(kPaymentDeclined, std::string{orders::kReasonTimeout});
        }
    }
    if (s.has(kOrderConfirmed)) {
        p.schedule("capture", StepKind::kForward, capture(o));
        settle_forward(p);
    }
}

void advance_orders(Planner& p, const Policy& policy, std::int64_t now_ms) {
    const State& s = p.state();
    const OrderInfo& o = s.order;
    if (s.deadlines.empty()) {
        p.emit(
            DeadlineSet{std::string{kFulfillmentDeadline}, now_ms + policy.fulfillment_timeout_ms});
    }
    const Step* confirm_step = s.step("confirm");
    const Step* cancel_step = s.step("cancel");
    if (!confirm_step && !cancel_step) {
        std::string reason;
        if (s.has(kStockAllocationFailed) || s.has(kPaymentDeclined)) {
            reason = s.fact_reason.empty() ? std::string{orders::kReasonTimeout} : s.fact_reason;
        } else if (s.has(kCancellationRequested)) {
            reason = orders::kReasonCustomerRequest;
        } else if (!s.deadlines.empty() && s.deadlines.front().reached) {
            reason = orders::kReasonTimeout;
        }
        if (!reason.empty()) {
            p.schedule("cancel", StepKind::kPivot, cancel(o, reason));
        } else if (s.has(kPaymentSecured)) {
            p.schedule("confirm", StepKind::kPivot, confirm(o));
        }
        return;
    }
    if (confirm_step && !cancel_step) {
        if (confirm_step->status == StepStatus::kSucceeded) {
            p.end(ProcessStatus::kCompleted, "");
        } else if (confirm_step->status == StepStatus::kRejected) {
            // The customer asked first.
            p.schedule("cancel", StepKind::kPivot, cancel(o, orders::kReasonCustomerRequest));
        } else if (!confirm_step->pending()) {
            // Every attempt failed, and any may have committed: the order decides through a
            // cancel, which it refuses if it was confirmed.
            p.schedule("cancel", StepKind::kPivot, cancel(o, orders::kReasonTimeout));
        }
        return;
    }
    if (cancel_step->status == StepStatus::kSucceeded) {
        const auto* asked = std::get_if<orders::CancelOrder>(&cancel_step->command);
        p.end(ProcessStatus::kCompensated, asked ? asked->reason : "");
    } else if (cancel_step->status == StepStatus::kRejected) {
        // Confirmed before the cancel got there: the order stands.
        p.end(ProcessStatus::kCompleted, "");
    } else if (!cancel_step->pending()) {
        p.end(ProcessStatus::kFailed, "cancel: " + cancel_step->error);
    }
}

std::string iso_time(std::int64_t ms) {
    return ms <= 0 ? "" : platform::format_utc_ms(ms);
}

}  // namespace

std::string_view to_string(Mode mode) {
    return mode == Mode::kOrchestration ? "orchestration" : "choreography";
}

std::optional<Mode> parse_mode(std::string_view text) {
    if (text == "orchestration") return Mode::kOrchestration;
    if (text == "choreography") return Mode::kChoreography;
    return std::nullopt;
}

std::string_view category(ProcessKind kind) {
    return kCategories[static_cast<std::size_t>(kind)];
}

std::string stream_of(ProcessKind kind, std::string_view order_id) {
    return std::string{category(kind)} + "-" + std::string{order_id};
}

std::optional<ProcessId> parse_stream(std::string_view stream) {
    for (std::size_t i = 0; i < kCategories.size(); ++i) {
        const auto& c = kCategories[i];
        if (stream.size() > c.size() + 1 && stream.starts_with(c) && stream[c.size()] == '-') {
            return ProcessId{static_cast<ProcessKind>(i), std::string{stream.substr(c.size() + 1)}};
        }
    }
    return std::nullopt;
}

std::vector<std::string> process_categories(Mode mode) {
    if (mode == Mode::kOrchestration) return {std::string{kCategories[0]}};
    return {std::string{kCategories[1]}, std::string{kCategories[2]}, std::string{kCategories[3]}};
}

std::int64_t RetryPolicy::delay_ms(int attempt, double jitter) const {
    std::int64_t delay = base_ms;
    for (int i = 1; i < attempt && delay < cap_ms; ++i) delay *= 2;
    delay = std::min(delay, cap_ms);
    return delay / 2 + static_cast<std::int64_t>(static_cast<double>(delay / 2) * jitter);
}

std::vector<Delivery> route(Mode placing, std::optional<Mode> running, std::string_view type,
                            const nlohmann::json& payload, std::int64_t at_ms) {
    std::vector<Delivery> out;
    auto fact = [&](std::string_view name, std::string reason = "") -> Events {
        return {FactObserved{std::string{name}, std::move(reason), at_ms}};
    };
    if (type == orders::OrderPlaced::kType) {
        auto placed = orders::decode(type, payload);
        if (!placed) {
            throw std::invalid_argument("an OrderPlaced this build cannot read: " +
                                        payload.dump().substr(0, 200));
        }
        const auto& e = std::get<orders::OrderPlaced>(*placed);
        Events start{
            ProcessStarted{{e.order_id, e.customer_id, e.account_id, e.lines, e.total}, at_ms}};
        // Applied again, it goes where it went the first time, and repeats nothing.
        if (running.value_or(placing) == Mode::kOrchestration) {
            out.push_back({ProcessKind::kFulfillment, e.order_id, start});
        } else {
            for (auto kind :
                 {ProcessKind::kInventory, ProcessKind::kPayments, ProcessKind::kOrders}) {
                out.push_back({kind, e.order_id, start});
            }
        }
        return out;
    }
    if (auto published = published_fact(type)) {
        // Only the reactors of choreography publish facts, to the other reactors of the order.
        auto event = decode(type, payload);
        if (!event) return out;
        const auto& e = std::get<FactPublished>(*event);
        const auto target =
            *published == kStockAllocated ? ProcessKind::kPayments : ProcessKind::kOrders;
        out.push_back({target, e.order.order_id, fact(*published, e.reason)});
        return out;
    }
    const std::string order_id = payload.contains("order_id") && payload["order_id"].is_string()
                                     ? payload["order_id"].get<std::string>()
                                     : "";
    if (!running || order_id.empty()) return out;
    if (type == orders::OrderCancellationRequested::kType) {
        out.push_back(
            {*running == Mode::kOrchestration ? ProcessKind::kFulfillment : ProcessKind::kOrders,
             order_id, fact(kCancellationRequested)});
        return out;
    }
    if (*running == Mode::kChoreography &&
        (type == orders::OrderConfirmed::kType || type == orders::OrderCancelled::kType)) {
        const bool confirmed = type == orders::OrderConfirmed::kType;
        const auto reason = payload.value("reason", "");
        for (auto kind : {ProcessKind::kInventory, ProcessKind::kPayments}) {
            out.push_back({kind, order_id,
                           confirmed ? fact(kOrderConfirmed) : fact(kOrderCancelled, reason)});
        }
    }
    return out;
}

Events advance(ProcessKind kind, const State& state, const Policy& policy, std::int64_t now_ms) {
    if (!state.started || state.ended()) return {};
    Planner p{state, now_ms};
    p.reach_deadlines();
    switch (kind) {
        case ProcessKind::kFulfillment:
            advance_orchestration(p, policy, now_ms);
            break;
        case ProcessKind::kInventory:
            advance_inventory(p);
            break;
        case ProcessKind::kPayments:
            advance_payments(p);
            break;
        case ProcessKind::kOrders:
            advance_orders(p, policy, now_ms);
            break;
    }
    return p.take();
}

Events record_attempt(const Step& step, int attempt, const domain::CommandOutcome& outcome,
                      const Policy& policy, std::int64_t now_ms, double jitter) {
    return std::visit(
        domain::Overloaded{
            [&](const domain::CommandSucceeded&) -> Events {
                return {StepSucceeded{step.name, attempt, now_ms}};
            },
            [&](const domain::CommandRejected& r) -> Events {
                return {StepRejected{step.name, attempt, r.reason.code, r.reason.message, now_ms}};
            },
            [&](const domain::CommandFailed& f) -> Events {
                const auto& retry = policy.retries(step.kind);
                if (attempt >= retry.max_attempts) {
                    return {StepGaveUp{step.name, attempt, f.message, now_ms}};
                }
                return {StepAttemptFailed{step.name, attempt, f.message,
                                          now_ms + retry.delay_ms(attempt, jitter), now_ms}};
            },
            [](const domain::CommandNotSent&) -> Events { return {}; },
        },
        outcome);
}

std::vector<Step> due_steps(const State& state, std::int64_t now_ms) {
    std::vector<Step> due;
    if (state.ended()) return due;
    for (const auto& s : state.steps) {
        if (s.pending() && s.retry_at_ms <= now_ms) due.push_back(s);
    }
    return due;
}

std::optional<std::int64_t> next_wake_ms(const State& state) {
    if (state.ended()) return std::nullopt;
    std::optional<std::int64_t> next;
    auto consider = [&](std::int64_t t) { next = next ? std::min(*next, t) : t; };
    for (const auto& s : state.steps) {
        if (!s.pending()) continue;
        consider(s.retry_at_ms);
        if (s.deadline_ms > 0) consider(s.deadline_ms);
    }
    for (const auto& d : state.deadlines) {
        if (!d.reached) consider(d.due_ms);
    }
    return next;
}

SagaView saga_view(Mode mode, std::string_view order_id,
                   const std::vector<std::pair<ProcessKind, State>>& processes) {
    SagaView view;
    view.mode = mode;
    view.order_id = order_id;
    view.saga_id = mode == Mode::kOrchestration
                       ? stream_of(ProcessKind::kFulfillment, order_id)
                       : "choreography.fulfillment-" + std::string{order_id};
    bool all_ended = !processes.empty();
    bool any_failed = false;
    bool all_completed = true;
    using nlohmann::json;
    auto time_or_null = [](std::int64_t ms) { return ms ? json(iso_time(ms)) : json(nullptr); };
    auto text_or_null = [](const std::string& text) {
        return text.empty() ? json(nullptr) : json(text);
    };
    for (const auto& [kind, state] : processes) {
        const auto stream = stream_of(kind, order_id);
        for (const auto& step : state.steps) {
            json failures = json::array();
            for (const auto& f : step.failures) {
                failures.push_back({{"attempt", f.attempt},
                                    {"at", iso_time(f.at_ms)},
                                    {"retry_at", time_or_null(f.retry_at_ms)},
                                    {"error", f.error}});
            }
            view.steps.push_back(
                {{"name", step.name},
                 {"process", stream},
                 {"kind", to_string(step.kind)},
                 {"status", to_string(step.status)},
                 {"attempts", step.attempts},
                 {"started_at", iso_time(step.scheduled_ms)},
                 {"finished_at", time_or_null(step.finished_ms)},
                 {"deadline_at", time_or_null(step.deadline_ms)},
                 {"retry_at", step.pending() ? time_or_null(step.retry_at_ms) : json(nullptr)},
                 {"error", text_or_null(step.error)},
                 {"failures", std::move(failures)}});
        }
        json deadlines = json::array();
        for (const auto& d : state.deadlines) {
            deadlines.push_back(
                {{"name", d.name}, {"due_at", iso_time(d.due_ms)}, {"reached", d.reached}});
        }
        view.processes.push_back(
            {{"process", stream},
             {"status", to_string(state.status)},
             {"started_at", time_or_null(state.started_ms)},
             {"ended_at", time_or_null(state.ended_ms)},
             {"end_reason", text_or_null(state.end_reason)},
             {"compensation",
              state.compensating ? json{{"started_at", time_or_null(state.compensation_started_ms)},
                                        {"reason", text_or_null(state.compensation_reason)}}
                                 : json(nullptr)},
             {"deadlines", std::move(deadlines)}});
        all_ended = all_ended && state.ended();
        any_failed = any_failed || state.status == ProcessStatus::kFailed;
        all_completed = all_completed && state.status == ProcessStatus::kCompleted;
    }
    // Choreography has three reactors; it is over when every one of them is.
    if (mode == Mode::kChoreography && processes.size() < 3) all_ended = false;
    if (any_failed) {
        view.status = "failed";
    } else if (!all_ended) {
        view.status = "running";
    } else {
        view.status = all_completed ? "completed" : "compensated";
    }
    return view;
}

}  // namespace ordo::sagas
