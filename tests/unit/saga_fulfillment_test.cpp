// Fulfillment processes without IO: orchestration and choreography step by step, routing, process
// streams, the retry policy.

#include <functional>
#include <map>

#include <gtest/gtest.h>

#include "sagas/fulfillment.hpp"
#include "sagas/runner.hpp"

namespace ordo::sagas {
namespace {

const OrderInfo kOrder{"o-1", "c-1", "a-1", {{"sku-1", 2, 100}, {"sku-2", 1, 50}}, 250};

// Drives one process the way the runner does: advance, then attempt every due step with
// the outcome `answer` gives, until nothing is due. Returns the events in order.
struct Driver {
    ProcessKind kind;
    Policy policy;
    std::int64_t now_ms = 1'000'000;
    Events log;
    State state;
    std::function<domain::CommandOutcome(const Step&)> answer = [](const Step&) {
        return domain::CommandOutcome{domain::CommandSucceeded{}};
    };

    void add(const Events& events) {
        for (const auto& e : events) {
            // Every event survives its encoding: the store holds JSON.
            auto decoded = decode(event_type(e), encode_payload(e));
            ASSERT_TRUE(decoded.has_value()) << event_type(e);
            log.push_back(*decoded);
            state = evolve(std::move(state), *decoded);
        }
    }
    void run() {
        for (int round = 0; round < 100; ++round) {
            auto next = advance(kind, state, policy, now_ms);
            if (!next.empty()) {
                add(next);
                continue;
            }
            auto due = due_steps(state, now_ms);
            if (due.empty()) return;
            for (const auto& step : due) {
                add(record_attempt(step, step.attempts + 1, answer(step), policy, now_ms, 0.5));
            }
        }
        FAIL() << "the process did not settle";
    }
    // Runs and lets time pass to each next wake-up (retries, deadlines) until it ends.
    void run_to_end() {
        for (int i = 0; i < 200 && !state.ended(); ++i) {
            run();
            if (auto wake = next_wake_ms(state)) now_ms = *wake;
        }
    }
    std::vector<std::string> scheduled() const {
        std::vector<std::string> names;
        for (const auto& s : state.steps) names.push_back(s.name);
        return names;
    }
    std::string status_of(const std::string& step) const {
        const Step* s = state.step(step);
        return s ? std::string{to_string(s->status)} : "absent";
    }
};

Driver started(ProcessKind kind) {
    Driver d{kind};
    d.add({ProcessStarted{kOrder, d.now_ms}});
    return d;
}

domain::CommandOutcome rejected(std::string code) {
    return domain::CommandRejected{{std::move(code), "no"}, {}};
}
domain::CommandOutcome failed() {
    return domain::CommandFailed{"database unavailable"};
}
domain::CommandOutcome ok() {
    return domain::CommandSucceeded{};
}
domain::CommandOutcome not_sent() {
    return domain::CommandNotSent{"overloaded"};
}

// A step's command is stored inside its StepScheduled event as it always was: processes
// already in the store load, and new events read the same.
TEST(ProcessEvents, AStoredStepScheduledKeepsItsFormAndLoadsItsTypedCommand) {
    const std::string stored =
        R"({"at_ms":1000,"command":{"order_id":"o-1","quantity":2,"sku":"sku-1",)"
        R"("type":"ReserveStock"},"deadline_ms":11000,"kind":"action","name":"reserve:sku-1"})";
    auto decoded = decode("StepScheduled", nlohmann::json::parse(stored));
    ASSERT_TRUE(decoded.has_value());
    const auto& step = std::get<StepScheduled>(*decoded);
    EXPECT_EQ(step.command,
              (domain::InternalCommand{domain::inventory::ReserveStock{"sku-1", "o-1", 2}}));
    EXPECT_EQ(encode_payload(*decoded).dump(), stored);
}

TEST(ProcessEvents, AStepScheduledWithAnUnknownCommandIsUndecodable) {
    auto payload = nlohmann::json::parse(
        R"({"at_ms":1,"command":{"type":"ShipParcel","order_id":"o-1"},"deadline_ms":0,)"
        R"("kind":"forward","name":"ship"})");
    EXPECT_FALSE(decode("StepScheduled", payload).has_value());
}

TEST(Orchestration, HappyPathReservesAndAuthorizesInParallelThenConfirmsThenSettles) {
    auto d = started(ProcessKind::kFulfillment);
    auto first = advance(d.kind, d.state, d.policy, d.now_ms);
    ASSERT_EQ(first.size(), 3u);  // both lines and the payment, at once
    d.run();
    EXPECT_EQ(d.scheduled(),
              (std::vector<std::string>{"reserve:sku-1", "reserve:sku-2", "authorize", "confirm",
                                        "commit:sku-1", "commit:sku-2", "capture"}));
    EXPECT_EQ(d.state.status, ProcessStatus::kCompleted);
    EXPECT_EQ(
        std::get<domain::payments::AuthorizePayment>(d.state.step("authorize")->command).amount,
        250);
}

TEST(Orchestration, OutOfStockCompensatesEveryActionThenCancels) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) {
        return s.name == "reserve:sku-2" ? rejected("insufficient_stock") : ok();
    };
    d.run();
    EXPECT_EQ(d.state.status, ProcessStatus::kCompensated);
    EXPECT_EQ(d.state.end_reason, "insufficient_stock");
    EXPECT_EQ(d.status_of("release:sku-1"), "succeeded");
    EXPECT_EQ(d.status_of("release:sku-2"), "succeeded");  // blind: harmless
    EXPECT_EQ(d.status_of("void"), "succeeded");
    EXPECT_EQ(d.status_of("cancel"), "succeeded");
    EXPECT_EQ(std::get<domain::orders::CancelOrder>(d.state.step("cancel")->command).reason,
              "insufficient_stock");
    EXPECT_EQ(d.status_of("confirm"), "absent");
}

// A command side that answers each typed command with `answer` and keeps what it was sent,
// in order, under the command ids the runner gives attempts.
struct FakeBus final : CommandBus {
    std::vector<std::pair<std::string, domain::InternalCommand>> sent;
    std::function<domain::CommandOutcome(const domain::InternalCommand&)> answer =
        [](const domain::InternalCommand&) { return ok(); };

    domain::CommandOutcome send(const std::string& command_id,
                                const domain::InternalCommand& command,
                                const eventstore::Metadata&) override {
        sent.emplace_back(command_id, command);
        return answer(command);
    }
    std::vector<domain::InternalCommand> commands() const {
        std::vector<domain::InternalCommand> out;
        for (const auto& [id, command] : sent) out.push_back(command);
        return out;
    }
};

// Sends every attempt of the driven process through `bus`, as the runner does.
void through(Driver& d, FakeBus& bus) {
    d.answer = [&d, &bus](const Step& s) {
        return bus.send(stream_of(d.kind, kOrder.order_id) + "/" + s.name + "/" +
                            std::to_string(s.attempts + 1),
                        s.command, {});
    };
}

TEST(Orchestration, SendsTheTypedCommandOfEachStepInTurn) {
    auto d = started(ProcessKind::kFulfillment);
    FakeBus bus;
    through(d, bus);
    d.run();
    using namespace domain;
    EXPECT_EQ(bus.commands(), (std::vector<InternalCommand>{
                                  inventory::ReserveStock{"sku-1", "o-1", 2},
                                  inventory::ReserveStock{"sku-2", "o-1", 1},
                                  payments::AuthorizePayment{"a-1", "o-1", 250},
                                  orders::ConfirmOrder{"o-1"},
                                  inventory::CommitReservation{"sku-1", "o-1"},
                                  inventory::CommitReservation{"sku-2", "o-1"},
                                  payments::CapturePayment{"a-1", "o-1"},
                              }));
    EXPECT_EQ(bus.sent.front().first, "saga.fulfillment-o-1/reserve:sku-1/1");
    EXPECT_EQ(d.state.status, ProcessStatus::kCompleted);
}

TEST(Orchestration, AnswersToTypedCommandsDecideTheCompensation) {
    auto d = started(ProcessKind::kFulfillment);
    FakeBus bus;
    using namespace domain;
    bus.answer = [](const InternalCommand& c) {
        const auto* reserve = std::get_if<inventory::ReserveStock>(&c);
        return reserve && reserve->sku == "sku-2" ? rejected("insufficient_stock") : ok();
    };
    through(d, bus);
    d.run();
    const auto sent = bus.commands();
    ASSERT_EQ(sent.size(), 7u);
    EXPECT_EQ(std::vector<InternalCommand>(sent.begin() + 3, sent.end()),
              (std::vector<InternalCommand>{
                  inventory::ReleaseReservation{"sku-1", "o-1"},
                  inventory::ReleaseReservation{"sku-2", "o-1"},
                  payments::VoidAuthorization{"a-1", "o-1"},
                  orders::CancelOrder{"o-1", std::string{orders::kReasonInsufficientStock}},
              }));
    EXPECT_EQ(d.state.status, ProcessStatus::kCompensated);
}

// A transient failure is retried as the same typed command under the next attempt's id.
TEST(Orchestration, RetriesSendTheSameCommandUnderTheNextAttemptsId) {
    auto d = started(ProcessKind::kFulfillment);
    FakeBus bus;
    int failures = 0;
    bus.answer = [&](const domain::InternalCommand& c) {
        if (std::holds_alternative<domain::payments::AuthorizePayment>(c) && failures++ < 2) {
            return failed();
        }
        return ok();
    };
    through(d, bus);
    d.run_to_end();
    std::vector<std::string> authorize_ids;
    for (const auto& [id, command] : bus.sent) {
        if (std::holds_alternative<domain::payments::AuthorizePayment>(command)) {
            EXPECT_EQ(
                command,
                (domain::InternalCommand{domain::payments::AuthorizePayment{"a-1", "o-1", 250}}));
            authorize_ids.push_back(id);
        }
    }
    EXPECT_EQ(authorize_ids, (std::vector<std::string>{"saga.fulfillment-o-1/authorize/1",
                                                       "saga.fulfillment-o-1/authorize/2",
                                                       "saga.fulfillment-o-1/authorize/3"}));
    EXPECT_EQ(d.state.status, ProcessStatus::kCompleted);
}

TEST(Orchestration, InsufficientFundsCancelsWithThatReason) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) {
        return s.name == "authorize" ? rejected("insufficient_funds") : ok();
    };
    d.run();
    EXPECT_EQ(d.state.end_reason, "insufficient_funds");
    EXPECT_EQ(d.state.status, ProcessStatus::kCompensated);
}

TEST(Orchestration, TransientFailuresRetryWithBackoffUntilTheDeadlineThenTimeOut) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) { return s.name == "authorize" ? failed() : ok(); };
    d.run();
    const Step* authorize = d.state.step("authorize");
    ASSERT_TRUE(authorize->pending());
    EXPECT_EQ(authorize->attempts, 1);
    EXPECT_GT(authorize->retry_at_ms, d.now_ms);  // not again before the backoff
    EXPECT_EQ(next_wake_ms(d.state), authorize->retry_at_ms);
    // Time passes past the step's deadline while it keeps failing.
    for (int i = 0; i < 4; ++i) {
        d.now_ms = *next_wake_ms(d.state);
        d.run();
    }
    EXPECT_EQ(d.state.step("authorize")->attempts, 5);
    d.now_ms += d.policy.step_timeout_ms;
    d.answer = [](const Step&) { return ok(); };
    d.run();
    EXPECT_EQ(d.status_of("authorize"), "timed_out");
    EXPECT_EQ(d.state.status, ProcessStatus::kCompensated);
    EXPECT_EQ(d.state.end_reason, "timeout");
}

// The saga view shows each failed attempt (with its retry time), the step's deadline, and
// the compensation that followed, so that a timeline can draw them.
TEST(SagaView, ShowsFailedAttemptsDeadlinesAndTheCompensation) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) { return s.name == "authorize" ? failed() : ok(); };
    d.run();
    for (int i = 0; i < 2; ++i) {
        d.now_ms = *next_wake_ms(d.state);
        d.run();
    }
    d.answer = [](const Step& s) {
        return s.name == "authorize" ? rejected("insufficient_funds") : ok();
    };
    d.now_ms = *next_wake_ms(d.state);
    d.run();
    ASSERT_EQ(d.state.status, ProcessStatus::kCompensated);

    auto view = saga_view(Mode::kOrchestration, "o-1", {{ProcessKind::kFulfillment, d.state}});
    EXPECT_EQ(view.status, "compensated");
    const nlohmann::json* authorize = nullptr;
    for (const auto& s : view.steps) {
        if (s["name"] == "authorize") authorize = &s;
    }
    ASSERT_NE(authorize, nullptr) << view.steps.dump();
    EXPECT_EQ((*authorize)["status"], "rejected");
    EXPECT_EQ((*authorize)["kind"], "action");
    EXPECT_EQ((*authorize)["process"], stream_of(ProcessKind::kFulfillment, "o-1"));
    EXPECT_TRUE((*authorize)["deadline_at"].is_string());
    EXPECT_TRUE((*authorize)["retry_at"].is_null());  // no longer pending
    const auto& failures = (*authorize)["failures"];
    ASSERT_EQ(failures.size(), 3u) << failures.dump();
    for (int i = 0; i < 3; ++i) {
        EXPECT_EQ(failures[i]["attempt"], i + 1);
        EXPECT_EQ(failures[i]["error"], "database unavailable");
        EXPECT_TRUE(failures[i]["retry_at"].is_string());
    }
    ASSERT_EQ(view.processes.size(), 1u);
    const auto& process = view.processes[0];
    EXPECT_EQ(process["status"], "compensated");
    EXPECT_EQ(process["end_reason"], "insufficient_funds");
    EXPECT_EQ(process["compensation"]["reason"], "insufficient_funds");
    EXPECT_TRUE(process["compensation"]["started_at"].is_string());
    EXPECT_TRUE(process["ended_at"].is_string());
    bool compensation_step = false;
    for (const auto& s : view.steps) compensation_step |= s["kind"] == "compensation";
    EXPECT_TRUE(compensation_step) << view.steps.dump();
}

TEST(SagaView, AStepKeepsOnlyItsLastFailures) {
    Step step{.name = "x"};
    State state;
    state.steps.push_back(step);
    for (int attempt = 1; attempt <= 25; ++attempt) {
        state = evolve(std::move(state),
                       StepAttemptFailed{"x", attempt, "e" + std::to_string(attempt), 0, attempt});
    }
    const auto& failures = state.step("x")->failures;
    ASSERT_EQ(failures.size(), Step::kMaxFailuresKept);
    EXPECT_EQ(failures.front().attempt, 16);
    EXPECT_EQ(failures.back().error, "e25");
    EXPECT_EQ(state.step("x")->attempts, 25);
}

// A command the command side refused to start (overloaded) is no attempt: however often
// it happens, even on a step's last allowed attempt, the step neither fails nor gives up,
// and the attempt that finally runs is its first.
TEST(Orchestration, ACommandThatWasNotSentIsNoAttempt) {
    Step last{"reserve:sku-1", StepKind::kAction};
    EXPECT_TRUE(record_attempt(last, 8, not_sent(), Policy{}, 0, 0.5).empty());

    auto d = started(ProcessKind::kFulfillment);
    std::map<std::string, int> refused;
    d.answer = [&](const Step& s) {
        if (refused[s.name]++ < 10) return not_sent();
        return ok();
    };
    d.run();
    EXPECT_EQ(d.state.status, ProcessStatus::kCompleted);
    for (const auto& e : d.log) {
        if (const auto* done = std::get_if<StepSucceeded>(&e)) {
            EXPECT_EQ(done->attempt, 1) << done->name;
        }
        EXPECT_FALSE(std::holds_alternative<StepAttemptFailed>(e)) << event_type(e);
        EXPECT_FALSE(std::holds_alternative<StepGaveUp>(e)) << event_type(e);
    }
}

TEST(Orchestration, CustomerCancelBeforeThePivotCompensates) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) { return s.name == "authorize" ? failed() : ok(); };
    d.run();
    d.add({FactObserved{"order_cancellation_requested", "", d.now_ms}});
    d.run();
    EXPECT_EQ(d.status_of("authorize"), "abandoned");
    EXPECT_EQ(d.state.end_reason, "customer_request");
    EXPECT_EQ(d.state.status, ProcessStatus::kCompensated);
}

TEST(Orchestration, ConfirmRejectedBecauseTheCustomerAskedFirstCompensates) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) {
        return s.name == "confirm" ? rejected("cancellation_requested") : ok();
    };
    d.run();
    EXPECT_EQ(d.state.end_reason, "customer_request");
    EXPECT_EQ(d.state.status, ProcessStatus::kCompensated);
    EXPECT_EQ(d.status_of("commit:sku-1"), "absent");
}

TEST(Orchestration, ACompensationThatCannotSucceedFailsTheSaga) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) {
        if (s.name == "authorize") return rejected("insufficient_funds");
        if (s.name == "release:sku-1") return failed();
        return ok();
    };
    d.run_to_end();
    EXPECT_EQ(d.state.status, ProcessStatus::kFailed);
    EXPECT_EQ(d.state.step("release:sku-1")->attempts, d.policy.settlements.max_attempts);
}

// Every attempt of the confirm failed (a database away longer than its retries, say), and
// any of them may have committed: nothing is undone before the order says which.
TEST(Orchestration, AConfirmThatGaveUpAsksTheOrderAndGoesOnIfItWasConfirmed) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) {
        if (s.name == "confirm") return failed();
        return s.name == "cancel" ? rejected("order_confirmed") : ok();
    };
    d.run_to_end();
    EXPECT_EQ(d.status_of("confirm"), "failed");
    EXPECT_EQ(d.status_of("cancel"), "rejected");
    EXPECT_EQ(d.status_of("release:sku-1"), "absent");
    EXPECT_EQ(d.status_of("void"), "absent");
    EXPECT_EQ(d.status_of("commit:sku-2"), "succeeded");
    EXPECT_EQ(d.status_of("capture"), "succeeded");
    EXPECT_EQ(d.state.status, ProcessStatus::kCompleted);
}

TEST(Orchestration, AConfirmThatGaveUpCompensatesOnceTheOrderIsCancelled) {
    auto d = started(ProcessKind::kFulfillment);
    d.answer = [](const Step& s) { return s.name == "confirm" ? failed() : ok(); };
    d.run_to_end();
    EXPECT_EQ(d.status_of("cancel"), "succeeded");
    EXPECT_EQ(std::get<domain::orders::CancelOrder>(d.state.step("cancel")->command).reason,
              "timeout");
    EXPECT_EQ(d.status_of("release:sku-1"), "succeeded");
    EXPECT_EQ(d.status_of("void"), "succeeded");
    EXPECT_EQ(d.status_of("capture"), "absent");
    EXPECT_EQ(d.state.status, ProcessStatus::kCompensated);
    EXPECT_EQ(d.state.end_reason, "timeout");
    // The order was cancelled before anything was undone.
    auto scheduled_at = [&](const std::string& name) {
        for (std::size_t i = 0; i < d.log.size(); ++i) {
            const auto* e = std::get_if<StepScheduled>(&d.log[i]);
            if (e && e->name == name) return i;
        }
        return d.log.size();
    };
    EXPECT_LT(scheduled_at("cancel"), scheduled_at("void"));
    EXPECT_LT(scheduled_at("void"), d.log.size());
}

TEST(Orchestration, AnOutcomeForAStepNoLongerPendingChangesNothing) {
    auto d = started(ProcessKind::kFulfillment);
    d.add(advance(d.kind, d.state, d.policy, d.now_ms));
    d.add({StepAbandoned{"authorize", d.now_ms}, StepSucceeded{"authorize", 1, d.now_ms}});
    EXPECT_EQ(d.status_of("authorize"), "abandoned");
}

TEST(Choreography, ReactorsReachTheSameOutcomeOnTheHappyPath) {
    auto inventory = started(ProcessKind::kInventory);
    auto payments = started(ProcessKind::kPayments);
    auto orders = started(ProcessKind::kOrders);
    inventory.run();
    ASSERT_TRUE(inventory.state.published.contains("stock_allocated"));
    payments.add({FactObserved{"stock_allocated", "", payments.now_ms}});
    payments.run();
    ASSERT_TRUE(payments.state.published.contains("payment_secured"));
    orders.add({FactObserved{"payment_secured", "", orders.now_ms}});
    orders.run();
    EXPECT_EQ(orders.status_of("confirm"), "succeeded");
    EXPECT_EQ(orders.state.status, ProcessStatus::kCompleted);
    inventory.add({FactObserved{"order_confirmed", "", inventory.now_ms}});
    inventory.run();
    payments.add({FactObserved{"order_confirmed", "", payments.now_ms}});
    payments.run();
    EXPECT_EQ(inventory.state.status, ProcessStatus::kCompleted);
    EXPECT_EQ(payments.state.status, ProcessStatus::kCompleted);
    EXPECT_EQ(payments.status_of("capture"), "succeeded");
    auto view = saga_view(Mode::kChoreography, "o-1",
                          {{ProcessKind::kInventory, inventory.state},
                           {ProcessKind::kPayments, payments.state},
                           {ProcessKind::kOrders, orders.state}});
    EXPECT_EQ(view.status, "completed");
    EXPECT_EQ(view.steps.size(), 7u);
}

TEST(Choreography, AllocationFailureCancelsTheOrderAndReleasesWhatWasReserved) {
    auto inventory = started(ProcessKind::kInventory);
    inventory.answer = [](const Step& s) {
        return s.name == "reserve:sku-1" ? rejected("insufficient_stock") : ok();
    };
    inventory.run();
    ASSERT_TRUE(inventory.state.published.contains("stock_allocation_failed"));
    EXPECT_EQ(inventory.status_of("release:sku-2"), "succeeded");
    EXPECT_FALSE(inventory.state.ended());  // waits for the order's outcome
    auto orders = started(ProcessKind::kOrders);
    orders.add({FactObserved{"stock_allocation_failed", "insufficient_stock", orders.now_ms}});
    orders.run();
    EXPECT_EQ(std::get<domain::orders::CancelOrder>(orders.state.step("cancel")->command).reason,
              "insufficient_stock");
    EXPECT_EQ(orders.state.status, ProcessStatus::kCompensated);
    auto payments = started(ProcessKind::kPayments);
    payments.add({FactObserved{"order_cancelled", "insufficient_stock", payments.now_ms}});
    payments.run();
    EXPECT_EQ(payments.state.status, ProcessStatus::kCompensated);
    EXPECT_TRUE(payments.state.steps.empty());  // nothing was authorized, nothing to void
    inventory.add({FactObserved{"order_cancelled", "insufficient_stock", inventory.now_ms}});
    inventory.run();
    EXPECT_EQ(inventory.state.status, ProcessStatus::kCompensated);
}

TEST(Choreography, TheOrdersDeadlineCancelsAndPaymentsVoidsWhatItHeld) {
    auto orders = started(ProcessKind::kOrders);
    orders.run();
    ASSERT_EQ(orders.state.deadlines.size(), 1u);
    orders.now_ms += orders.policy.fulfillment_timeout_ms;
    orders.run();
    EXPECT_EQ(std::get<domain::orders::CancelOrder>(orders.state.step("cancel")->command).reason,
              "timeout");
    auto payments = started(ProcessKind::kPayments);
    payments.answer = [](const Step&) { return failed(); };
    payments.add({FactObserved{"stock_allocated", "", payments.now_ms}});
    payments.run();
    payments.answer = [](const Step&) { return ok(); };
    payments.add({FactObserved{"order_cancelled", "timeout", payments.now_ms}});
    payments.run();
    EXPECT_EQ(payments.status_of("authorize"), "abandoned");
    EXPECT_EQ(payments.status_of("void"), "succeeded");
    EXPECT_EQ(payments.state.status, ProcessStatus::kCompensated);
}

TEST(Choreography, ACancelThatArrivesAfterTheConfirmLeavesTheOrderConfirmed) {
    auto orders = started(ProcessKind::kOrders);
    orders.add({FactObserved{"payment_secured", "", orders.now_ms}});
    orders.answer = [](const Step& s) {
        return s.name == "confirm" ? rejected("cancellation_requested")
                                   : rejected("already_confirmed");
    };
    orders.run();
    EXPECT_EQ(orders.status_of("cancel"), "rejected");
    EXPECT_EQ(orders.state.status, ProcessStatus::kCompleted);
}

TEST(Routing, ANewOrderStartsInTheDeploymentsModeOneProcessOrThree) {
    nlohmann::json placed = {
        {"order_id", "o-1"},
        {"customer_id", "c-1"},
        {"account_id", "a-1"},
        {"lines",
         {{{"sku", "s"}, {"quantity", 1}, {"unit_price", {{"amount", 5}, {"currency", "EUR"}}}}}},
        {"total", 5}};
    auto orchestrated = route(Mode::kOrchestration, std::nullopt, "OrderPlaced", placed, 1);
    ASSERT_EQ(orchestrated.size(), 1u);
    EXPECT_EQ(orchestrated[0].process, ProcessKind::kFulfillment);
    auto choreographed = route(Mode::kChoreography, std::nullopt, "OrderPlaced", placed, 1);
    ASSERT_EQ(choreographed.size(), 3u);
    EXPECT_EQ(choreographed[0].process, ProcessKind::kInventory);
    EXPECT_TRUE(std::holds_alternative<ProcessStarted>(choreographed[0].events[0]));
    // Applied again after a switch, it goes where it went the first time.
    EXPECT_EQ(route(Mode::kChoreography, Mode::kOrchestration, "OrderPlaced", placed, 1).size(),
              1u);
    // An order this build cannot read is not dropped (its order would wait for ever): the
    // intake parks it as a dead letter.
    EXPECT_THROW(route(Mode::kOrchestration, std::nullopt, "OrderPlaced", {{"bad", 1}}, 1),
                 std::invalid_argument);
}

TEST(Routing, LaterEventsGoToTheProcessesTheOrderHasWhateverTheDeploymentsMode) {
    const nlohmann::json order = {{"order_id", "o-1"}};
    for (auto placing : {Mode::kOrchestration, Mode::kChoreography}) {
        auto cancel = route(placing, Mode::kOrchestration, "OrderCancellationRequested", order, 1);
        ASSERT_EQ(cancel.size(), 1u);
        EXPECT_EQ(cancel[0].process, ProcessKind::kFulfillment);
        cancel = route(placing, Mode::kChoreography, "OrderCancellationRequested", order, 1);
        ASSERT_EQ(cancel.size(), 1u);
        EXPECT_EQ(cancel[0].process, ProcessKind::kOrders);

        auto cancelled = route(placing, Mode::kChoreography, "OrderCancelled",
                               {{"order_id", "o-1"}, {"reason", "timeout"}}, 1);
        ASSERT_EQ(cancelled.size(), 2u);
        EXPECT_EQ(std::get<FactObserved>(cancelled[0].events[0]).reason, "timeout");
        EXPECT_TRUE(route(placing, Mode::kOrchestration, "OrderConfirmed", order, 1).empty());
        // An order without processes (placed before sagas ran) gets none.
        EXPECT_TRUE(route(placing, std::nullopt, "OrderCancellationRequested", order, 1).empty());
        EXPECT_TRUE(route(placing, std::nullopt, "OrderConfirmed", order, 1).empty());

        // The facts a reactor publishes reach the order's other reactors in either mode.
        const Event allocated = FactPublished{"stock_allocated", "", {.order_id = "o-1"}, 1};
        auto told =
            route(placing, std::nullopt, event_type(allocated), encode_payload(allocated), 1);
        ASSERT_EQ(told.size(), 1u);
        EXPECT_EQ(told[0].process, ProcessKind::kPayments);
        EXPECT_EQ(std::get<FactObserved>(told[0].events[0]).fact, "stock_allocated");
    }
}

TEST(Streams, ProcessStreamsRoundTrip) {
    auto id = parse_stream(stream_of(ProcessKind::kPayments, "o-1-2"));
    ASSERT_TRUE(id);
    EXPECT_EQ(id->kind, ProcessKind::kPayments);
    EXPECT_EQ(id->order_id, "o-1-2");
    EXPECT_FALSE(parse_stream("order-o-1"));
}

TEST(RetryPolicy, BackoffGrowsExponentiallyWithJitterUpToTheCap) {
    RetryPolicy p{10, 100, 1'000};
    EXPECT_EQ(p.delay_ms(1, 0.0), 50);
    EXPECT_EQ(p.delay_ms(1, 0.999), 99);
    EXPECT_EQ(p.delay_ms(2, 0.0), 100);
    EXPECT_EQ(p.delay_ms(3, 0.0), 200);
    EXPECT_EQ(p.delay_ms(20, 0.0), 500);  // capped
    Step s{"x", StepKind::kAction};
    auto gave_up = record_attempt(s, 8, failed(), Policy{}, 0, 0.5);
    EXPECT_TRUE(std::holds_alternative<StepGaveUp>(gave_up[0]));
}

TEST(Choreography, AConfirmThatGaveUpAsksTheOrderThroughACancel) {
    for (bool was_confirmed : {true, false}) {
        auto orders = started(ProcessKind::kOrders);
        orders.add({FactObserved{"payment_secured", "", orders.now_ms}});
        orders.answer = [was_confirmed](const Step& s) {
            if (s.name == "confirm") return failed();
            return was_confirmed ? rejected("order_confirmed") : ok();
        };
        orders.run_to_end();
        EXPECT_EQ(orders.status_of("confirm"), "failed");
        EXPECT_EQ(
            std::get<domain::orders::CancelOrder>(orders.state.step("cancel")->command).reason,
            "timeout");
        EXPECT_EQ(orders.state.status,
                  was_confirmed ? ProcessStatus::kCompleted : ProcessStatus::kCompensated);
    }
}

}  // namespace
}  // namespace ordo::sagas
