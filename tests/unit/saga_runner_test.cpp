// The saga runner on the in-memory store and schedule: given a process placed by the intake,
// when run_due runs, then these commands are sent (with these ids) and these outcomes are
// stored; retries, conflicts and lost leases on a clock the test drives.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <future>
#include <map>
#include <mutex>
#include <numeric>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "domain/schema.hpp"
#include "eventstore/memory_store.hpp"
#include "eventstore/repository.hpp"
#include "platform/core/clock.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "sagas/memory_schedule.hpp"
#include "sagas/process_stream.hpp"
#include "sagas/runner.hpp"
#include "tests/support/conditions.hpp"

namespace ordo::sagas {
namespace {

using namespace std::chrono_literals;

const std::string kStream = "saga.fulfillment-o-1";

// A command side that answers each command id with `answer` the first time and with that
// first outcome ever after, as the command log does; `on_send` runs before answering.
class FakeBus final : public CommandBus {
   public:
    domain::CommandOutcome send(const std::string& command_id, const domain::InternalCommand&,
                                const eventstore::Metadata& cause) override {
        std::function<void(const std::string&)> hook;
        {
            std::lock_guard lock{mutex_};
            sent_.push_back(command_id);
            causes_[command_id] = cause.causation_id;
            hook = on_send;
        }
        if (hook) hook(command_id);
        std::lock_guard lock{mutex_};
        if (auto it = answered_.find(command_id); it != answered_.end()) return it->second;
        auto outcome = answer(command_id);
        // Refused or failed commands did nothing: the command log keeps no outcome for them.
        if (std::holds_alternative<domain::CommandSucceeded>(outcome) ||
            std::holds_alternative<domain::CommandRejected>(outcome)) {
            answered_.emplace(command_id, outcome);
        }
        return outcome;
    }

    // Command ids in the order they were sent (a round's commands in any order).
    std::vector<std::string> sent() {
        std::lock_guard lock{mutex_};
        return sent_;
    }
    std::string causation_of(const std::string& command_id) {
        std::lock_guard lock{mutex_};
        return causes_.at(command_id);
    }

    std::function<domain::CommandOutcome(const std::string&)> answer =
        [](const std::string&) -> domain::CommandOutcome { return domain::CommandSucceeded{}; };
    std::function<void(const std::string&)> on_send;

   private:
    std::mutex mutex_;
    std::vector<std::string> sent_;
    std::map<std::string, std::string> causes_;
    std::map<std::string, domain::CommandOutcome> answered_;
};

bool contains(const std::vector<std::string>& all, const std::string& one) {
    return std::find(all.begin(), all.end(), one) != all.end();
}

class SagaRunnerOnMemory : public ::testing::Test {
   protected:
    SagaRunnerOnMemory() { options_.workers = 1; }

    // given: OrderPlaced for the order (one line of sku-1) became its process's first events
    // and marked the process due, as the intake does (here in two steps, not one
    // transaction: the runner cannot tell).
    void place(const std::string& order_id = "o-1") {
        const nlohmann::json placed{{"order_id", order_id},
                                    {"customer_id", "c-1"},
                                    {"account_id", "a-1"},
                                    {"lines",
                                     {{{"sku", "sku-1"},
                                       {"quantity", 1},
                                       {"unit_price", {{"amount", 5}, {"currency", "EUR"}}}}}},
                                    {"total", 5}};
        deliver(route(Mode::kOrchestration, std::nullopt, "OrderPlaced", placed, now_ms()));
    }
    void deliver(const std::vector<Delivery>& deliveries) {
        for (const auto& delivery : deliveries) {
            const auto stream = stream_of(delivery.process, delivery.order_id);
            std::vector<eventstore::NewEvent> batch;
            for (const auto& e : delivery.events) {
                batch.push_back({platform::new_uuid(),
                                 event_type(e),
                                 encode_payload(e),
                                 {.actor = "saga"},
                                 domain::schema_version(e)});
            }
            store_.append(stream, eventstore::ExpectedVersion::any(), batch);
            schedule_.mark_due(stream);
        }
    }

    Runner& runner() {
        if (!runner_) {
            runner_ = std::make_unique<Runner>(options_, store_, schedule_, bus_, clock_,
                                               platform::Logger::null_logger(), metrics_);
        }
        return *runner_;
    }

    std::int64_t now_ms() const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(
                   clock_.now().time_since_epoch())
            .count();
    }

    LoadedProcess process() { return load_process(store_, kStream); }

    std::vector<std::string> stored_types() {
        std::vector<std::string> types;
        for (const auto& e : store_.read_stream(kStream, 1, 10'000)) types.push_back(e.type);
        return types;
    }
    int count(const std::string& type) {
        auto types = stored_types();
        return static_cast<int>(std::count(types.begin(), types.end(), type));
    }

    double counter(const char* name, platform::metrics::Labels labels = {}) {
        return metrics_.counter(name, "", labels).value();
    }

    platform::ManualClock clock_;
    eventstore::MemoryStore store_{clock_};
    MemorySchedule schedule_{clock_};
    FakeBus bus_;
    platform::metrics::Registry metrics_;
    RunnerOptions options_;
    std::unique_ptr<Runner> runner_;
};

TEST_F(SagaRunnerOnMemory, RunsAStartedProcessToItsEndSendingEachStepOnce) {
    place();
    EXPECT_EQ(runner().run_due(), 1u);

    EXPECT_EQ(bus_.sent().size(), 5u);
    for (const auto* step : {"reserve:sku-1", "authorize", "confirm", "commit:sku-1", "capture"}) {
        EXPECT_TRUE(contains(bus_.sent(), kStream + "/" + step + "/1")) << step;
    }
    auto loaded = process();
    EXPECT_EQ(loaded.state.status, ProcessStatus::kCompleted);
    EXPECT_EQ(count("StepSucceeded"), 5);
    // Each command is caused by the event that scheduled its step.
    EXPECT_EQ(bus_.causation_of(kStream + "/confirm/1"), loaded.scheduled_by.at("confirm"));
    // A round's outcomes and what they lead to are one append: the intake's, the first
    // steps, then {reserve, authorize -> confirm}, {confirm -> commit, capture},
    // {commit, capture -> the end}. What was decided on the outcomes names the last as cause.
    const auto stored = store_.read_stream(kStream, 1, 10'000);
    std::set<std::uint64_t> transactions;
    for (std::size_t i = 0; i < stored.size(); ++i) {
        transactions.insert(stored[i].transaction_id);
        const bool decided = stored[i].type == "StepScheduled" || stored[i].type == "ProcessEnded";
        if (!decided || i == 0 || stored[i - 1].type == "StepScheduled") continue;
        if (stored[i - 1].type == "ProcessStarted" || stored[i - 1].type == "DeadlineSet") continue;
        EXPECT_EQ(stored[i].transaction_id, stored[i - 1].transaction_id) << i;
        EXPECT_EQ(stored[i].metadata.causation_id, stored[i - 1].event_id) << i;
    }
    EXPECT_EQ(transactions.size(), 5u);
    // Nothing left to wake it for: off the schedule.
    EXPECT_FALSE(schedule_.row(kStream).has_value());
    EXPECT_EQ(counter("ordo_sagas_started_total"), 1);
    EXPECT_EQ(counter("ordo_sagas_completed_total"), 1);
    EXPECT_EQ(runner().run_due(), 0u);
}

TEST_F(SagaRunnerOnMemory, ARejectedReservationCompensatesAndCancelsTheOrder) {
    bus_.answer = [](const std::string& id) -> domain::CommandOutcome {
        if (id.find("/reserve:") != std::string::npos) {
            return domain::CommandRejected{{"insufficient_stock", "no"}, {}};
        }
        return domain::CommandSucceeded{};
    };
    place();
    runner().run_due();

    const auto sent = bus_.sent();
    EXPECT_TRUE(contains(sent, kStream + "/void/1"));
    EXPECT_TRUE(contains(sent, kStream + "/cancel/1"));
    EXPECT_FALSE(contains(sent, kStream + "/confirm/1"));
    EXPECT_EQ(count("StepRejected"), 1);
    EXPECT_EQ(count("CompensationStarted"), 1);
    EXPECT_EQ(process().state.status, ProcessStatus::kCompensated);
    EXPECT_EQ(counter("ordo_sagas_compensated_total"), 1);
    EXPECT_FALSE(schedule_.row(kStream).has_value());
}

TEST_F(SagaRunnerOnMemory, AFailedCommandIsRetriedAfterThePolicysDelayAsTheNextAttempt) {
    int failures = 2;
    bus_.answer = [&](const std::string& id) -> domain::CommandOutcome {
        if (id.find("/authorize/") != std::string::npos && failures-- > 0) {
            return domain::CommandFailed{"database unavailable"};
        }
        return domain::CommandSucceeded{};
    };
    place();
    runner().run_due();
    EXPECT_TRUE(contains(bus_.sent(), kStream + "/authorize/1"));
    EXPECT_EQ(count("StepAttemptFailed"), 1);
    const auto retry_at = process().state.step("authorize")->retry_at_ms;
    ASSERT_GT(retry_at, now_ms());
    EXPECT_EQ(schedule_.row(kStream)->due_at,
              clock_.now() + std::chrono::milliseconds{retry_at - now_ms()});

    // Not due before the policy's delay has passed.
    clock_.advance(std::chrono::milliseconds{retry_at - now_ms() - 1});
    EXPECT_EQ(runner().run_due(), 0u);
    EXPECT_FALSE(contains(bus_.sent(), kStream + "/authorize/2"));

    clock_.advance(1ms);
    EXPECT_EQ(runner().run_due(), 1u);
    EXPECT_TRUE(contains(bus_.sent(), kStream + "/authorize/2"));
    EXPECT_EQ(count("StepAttemptFailed"), 2);

    clock_.advance(std::chrono::milliseconds{options_.policy.actions.cap_ms});
    EXPECT_EQ(runner().run_due(), 1u);
    EXPECT_TRUE(contains(bus_.sent(), kStream + "/authorize/3"));
    EXPECT_EQ(process().state.status, ProcessStatus::kCompleted);
    EXPECT_EQ(counter("ordo_saga_step_attempts_total", {{"result", "failed"}}), 2);
}

TEST_F(SagaRunnerOnMemory, ACommandNotSentUsesNoAttempt) {
    int refusals = 2;
    bus_.answer = [&](const std::string& id) -> domain::CommandOutcome {
        if (id.find("/reserve:") != std::string::npos && refusals-- > 0) {
            return domain::CommandNotSent{"no connection came free in time"};
        }
        return domain::CommandSucceeded{};
    };
    place();
    runner().run_due();
    EXPECT_EQ(count("StepAttemptFailed"), 0);
    EXPECT_EQ(process().state.step("reserve:sku-1")->attempts, 0);
    // Looked at again after the not-sent delay, doubled at random at most.
    ASSERT_TRUE(schedule_.row(kStream).has_value());
    EXPECT_GE(schedule_.row(kStream)->due_at, clock_.now() + options_.not_sent_delay);
    EXPECT_LE(schedule_.row(kStream)->due_at, clock_.now() + 2 * options_.not_sent_delay);

    for (int i = 0; i < 2; ++i) {
        clock_.advance(2 * options_.not_sent_delay);
        EXPECT_EQ(runner().run_due(), 1u);
    }
    auto sent = bus_.sent();
    EXPECT_EQ(std::count(sent.begin(), sent.end(), kStream + "/reserve:sku-1/1"), 3);
    EXPECT_FALSE(contains(sent, kStream + "/reserve:sku-1/2"));
    EXPECT_EQ(count("StepAttemptFailed"), 0);
    EXPECT_EQ(process().state.status, ProcessStatus::kCompleted);
    EXPECT_EQ(counter("ordo_saga_steps_not_sent_total"), 2);
}

TEST_F(SagaRunnerOnMemory, AnAppendByAnotherWriterMidRoundMakesTheRunnerReloadAndEndRight) {
    // The customer's cancel reaches the process (through the intake) while its reservation
    // is in flight: the runner's append of the outcomes conflicts.
    std::atomic<int> cancels{0};
    bus_.on_send = [&](const std::string& id) {
        if (id != kStream + "/reserve:sku-1/1" || cancels++ > 0) return;
        deliver(route(Mode::kOrchestration, Mode::kOrchestration, "OrderCancellationRequested",
                      {{"order_id", "o-1"}}, now_ms()));
    };
    place();
    runner().run_due();

    EXPECT_GE(counter("ordo_saga_conflicts_total"), 1);
    auto loaded = process();
    EXPECT_EQ(loaded.state.status, ProcessStatus::kCompensated);
    EXPECT_TRUE(loaded.state.has("order_cancellation_requested"));
    // The outcomes decided on the stale version were dropped, not stored after the cancel:
    // the reloaded process abandoned both actions and undid them blind.
    EXPECT_EQ(cancels, 1);
    EXPECT_EQ(count("FactObserved"), 1);
    EXPECT_EQ(loaded.state.step("reserve:sku-1")->status, StepStatus::kAbandoned);
    EXPECT_EQ(loaded.state.step("authorize")->status, StepStatus::kAbandoned);
    EXPECT_EQ(count("ProcessEnded"), 1);
    auto sent = bus_.sent();
    EXPECT_FALSE(contains(sent, kStream + "/reserve:sku-1/2"));
    EXPECT_TRUE(contains(sent, kStream + "/release:sku-1/1"));
    EXPECT_TRUE(contains(sent, kStream + "/void/1"));
    EXPECT_TRUE(contains(sent, kStream + "/cancel/1"));
    EXPECT_FALSE(contains(sent, kStream + "/confirm/1"));
    // The intake marked it due while the runner held it: due once more, though the runner
    // saw its event. That run finds the process ended, sends nothing and takes it off the
    // schedule.
    ASSERT_TRUE(schedule_.row(kStream).has_value());
    EXPECT_EQ(schedule_.row(kStream)->due_at, clock_.now());
    EXPECT_EQ(runner().run_due(), 1u);
    EXPECT_EQ(bus_.sent().size(), sent.size());
    EXPECT_FALSE(schedule_.row(kStream).has_value());
}

TEST_F(SagaRunnerOnMemory, ARunnerWhoseLeaseAnotherTookStopsWithoutRescheduling) {
    std::optional<Claim> taken_over;
    // The first round's commands outlast the lease, and another runner claims the process.
    bus_.on_send = [&](const std::string& id) {
        if (id != kStream + "/authorize/1") return;
        clock_.advance(options_.lease + 1s);
        auto claims = schedule_.claim(1, options_.lease);
        ASSERT_EQ(claims.size(), 1u);
        taken_over = claims.front();
    };
    place();
    runner().run_due();

    ASSERT_TRUE(taken_over.has_value());
    EXPECT_EQ(counter("ordo_saga_leases_lost_total"), 1);
    // The first runner went no further: no pivot decided, no confirm sent.
    EXPECT_FALSE(contains(bus_.sent(), kStream + "/confirm/1"));
    EXPECT_EQ(process().state.step("confirm"), nullptr);
    // The row is still the other runner's, as it leased it.
    auto row = schedule_.row(kStream);
    ASSERT_TRUE(row.has_value());
    EXPECT_EQ(row->leased_until, clock_.now() + options_.lease);
    EXPECT_TRUE(schedule_.renew(*taken_over, options_.lease));
}

TEST_F(SagaRunnerOnMemory, ProcessesClaimedTogetherAreFencedFromTheClaimOn) {
    options_.claim_batch = 2;
    std::vector<Claim> taken_over;
    // While o-1's first commands are out, both leases pass and another runner claims both.
    bus_.on_send = [&](const std::string& id) {
        if (id != kStream + "/authorize/1") return;
        clock_.advance(options_.lease + 1s);
        taken_over = schedule_.claim(2, options_.lease);
    };
    place("o-1");
    clock_.advance(1ms);  // o-1 is the older: claimed and run first
    place("o-2");
    EXPECT_EQ(runner().run_due(), 2u);

    ASSERT_EQ(taken_over.size(), 2u);
    // o-2 waited its turn under a lease that ran out meanwhile: the runner checks before it
    // runs it, finds it lost, and leaves it to the other runner.
    EXPECT_EQ(counter("ordo_saga_leases_lost_total"), 2);
    for (const auto& id : bus_.sent())
        EXPECT_EQ(id.rfind("saga.fulfillment-o-2/", 0), std::string::npos) << id;
}

// A schedule that notes what each claim asked for and got.
class CountingSchedule final : public ProcessSchedule {
   public:
    explicit CountingSchedule(ProcessSchedule& inner) : inner_{inner} {}
    std::vector<Claim> claim(std::size_t batch, std::chrono::seconds lease) override {
        auto claims = inner_.claim(batch, lease);
        std::lock_guard lock{mutex_};
        asked_.push_back(batch);
        if (!claims.empty()) got_.push_back(claims.size());
        return claims;
    }
    bool renew(Claim& claim, std::chrono::seconds lease) override {
        return inner_.renew(claim, lease);
    }
    void reschedule(const Claim& claim, std::optional<std::chrono::milliseconds> wake) override {
        inner_.reschedule(claim, wake);
    }
    void set_aside(const Claim& claim, std::chrono::seconds delay) override {
        inner_.set_aside(claim, delay);
    }
    std::vector<std::size_t> asked() {
        std::lock_guard lock{mutex_};
        return asked_;
    }
    std::vector<std::size_t> got() {  // the claims that found something
        std::lock_guard lock{mutex_};
        return got_;
    }

   private:
    ProcessSchedule& inner_;
    std::mutex mutex_;
    std::vector<std::size_t> asked_;
    std::vector<std::size_t> got_;
};

std::string order_stream(int n) {
    return "saga.fulfillment-o-" + std::to_string(n);
}

// run() claims for all its workers, several processes a round trip, and every process runs
// once to its end: each command sent once.
TEST_F(SagaRunnerOnMemory, RunClaimsForItsWorkersManyAtATimeAndRunsEachProcessOnce) {
    constexpr int kOrders = 12;
    for (int i = 1; i <= kOrders; ++i) place("o-" + std::to_string(i));
    options_.workers = 3;
    CountingSchedule counting{schedule_};
    Runner runner{options_, store_, counting, bus_, clock_, platform::Logger::null_logger(),
                  metrics_};
    std::atomic<bool> stop{false};
    std::thread running{[&] { runner.run(stop); }};
    const bool ended = testing::eventually(
        [&] {
            for (int i = 1; i <= kOrders; ++i) {
                if (load_process(store_, order_stream(i)).state.status !=
                    ProcessStatus::kCompleted) {
                    return false;
                }
            }
            return true;
        },
        std::chrono::seconds(30), std::chrono::milliseconds(5));
    stop = true;
    running.join();
    ASSERT_TRUE(ended);

    auto sent = bus_.sent();
    EXPECT_EQ(sent.size(), 5u * kOrders);
    EXPECT_EQ(std::set<std::string>(sent.begin(), sent.end()).size(), sent.size());
    for (int i = 1; i <= kOrders; ++i) EXPECT_FALSE(schedule_.row(order_stream(i)).has_value());
    // Two per worker in hand: the first claim asks for six, and the twelve came in fewer
    // claims than processes.
    ASSERT_FALSE(counting.asked().empty());
    EXPECT_EQ(counting.asked().front(), 6u);
    for (auto asked : counting.asked()) EXPECT_LE(asked, 6u);
    const auto got = counting.got();
    EXPECT_EQ(std::accumulate(got.begin(), got.end(), std::size_t{0}), std::size_t{kOrders});
    ASSERT_FALSE(got.empty());
    EXPECT_EQ(got.front(), 6u) << "the first claim took six processes in one round trip";
}

// A runner that stops hands back, due at once, what it claimed but did not start; the
// process a worker was running is seen to its end.
TEST_F(SagaRunnerOnMemory, StoppingHandsBackWhatWasClaimedButNotStarted) {
    place("o-1");
    clock_.advance(1ms);
    place("o-2");
    std::promise<void> release;
    auto released = release.get_future().share();
    bus_.on_send = [released](const std::string&) { released.wait(); };
    std::atomic<bool> stop{false};
    std::thread running{[&] { runner().run(stop); }};
    // Stops the runner and lets its held command go, also when an assertion below fails.
    auto stopped = [&, done = false]() mutable {
        if (done) return;
        done = true;
        stop = true;
        release.set_value();
        running.join();
    };
    struct Guard {
        decltype(stopped)& stop;
        ~Guard() { stop(); }
    } guard{stopped};
    // One worker: o-1 runs (its first command held), o-2 waits in the queue.
    ASSERT_TRUE(testing::eventually(
        [&] {
            auto queued = schedule_.row(order_stream(2));
            return !bus_.sent().empty() && queued && queued->leased_until.has_value();
        },
        std::chrono::seconds(30), std::chrono::milliseconds(5)));
    stopped();

    EXPECT_EQ(process().state.status, ProcessStatus::kCompleted);
    for (const auto& id : bus_.sent()) {
        EXPECT_EQ(id.rfind(order_stream(2) + "/", 0), std::string::npos) << id;
    }
    auto handed_back = schedule_.row(order_stream(2));
    ASSERT_TRUE(handed_back.has_value());
    EXPECT_FALSE(handed_back->leased_until.has_value());
    EXPECT_EQ(handed_back->due_at, clock_.now());
}

TEST(MemorySchedule, ALeasedProcessIsNotClaimedAgainUntilItsLeasePasses) {
    platform::ManualClock clock;
    MemorySchedule schedule{clock};
    schedule.mark_due("saga.fulfillment-a");
    auto first = schedule.claim(10, 10s);
    ASSERT_EQ(first.size(), 1u);
    EXPECT_TRUE(schedule.claim(10, 10s).empty());
    clock.advance(10s);
    EXPECT_TRUE(schedule.claim(10, 10s).empty());  // the lease ends after its last instant
    clock.advance(1ms);
    auto second = schedule.claim(10, 10s);
    ASSERT_EQ(second.size(), 1u);
    // The first claim is fenced off: it neither renews nor releases the row.
    EXPECT_FALSE(schedule.renew(first.front(), 10s));
    schedule.set_aside(first.front(), 1s);
    schedule.reschedule(first.front(), std::nullopt);
    ASSERT_TRUE(schedule.row("saga.fulfillment-a").has_value());
    EXPECT_EQ(schedule.row("saga.fulfillment-a")->leased_until, clock.now() + 10s);
}

TEST(MemorySchedule, AProcessMarkedDueWhileClaimedIsDueAtOnce) {
    platform::ManualClock clock;
    MemorySchedule schedule{clock};
    const std::string stream = "saga.fulfillment-a";
    schedule.mark_due(stream);
    auto claim = schedule.claim(1, 10s).at(0);
    schedule.mark_due(stream);  // the intake appended to it while the runner held it
    schedule.reschedule(claim, 5s);
    EXPECT_EQ(schedule.row(stream)->due_at, clock.now());
    EXPECT_FALSE(schedule.row(stream)->leased_until.has_value());

    // Claimed again, nothing new: the wake-up it asks for; with none, off the schedule,
    // unless a mark came meanwhile.
    claim = schedule.claim(1, 10s).at(0);
    schedule.reschedule(claim, 5s);
    EXPECT_EQ(schedule.row(stream)->due_at, clock.now() + 5s);
    EXPECT_TRUE(schedule.claim(1, 10s).empty());
    clock.advance(5s);
    claim = schedule.claim(1, 10s).at(0);
    schedule.mark_due(stream);
    schedule.reschedule(claim, std::nullopt);
    EXPECT_EQ(schedule.row(stream)->due_at, clock.now());
    claim = schedule.claim(1, 10s).at(0);
    schedule.reschedule(claim, std::nullopt);
    EXPECT_FALSE(schedule.row(stream).has_value());
}

TEST(ProcessStream, FoldsAStreamLongerThanAPageAndStopsWhereAsked) {
    platform::ManualClock clock;
    eventstore::MemoryStore store{clock};
    const std::string stream = "saga.fulfillment-a";
    std::vector<eventstore::NewEvent> batch;
    batch.push_back({platform::new_uuid(),
                     "ProcessStarted",
                     encode_payload(ProcessStarted{{"a", "c", "acc", {}, 0}, 1}),
                     {.correlation_id = "a"},
                     domain::schema_version_of<ProcessStarted>()});
    for (std::size_t i = 0; i < eventstore::kLoadPage + 5; ++i) {
        batch.push_back({platform::new_uuid(),
                         "FactObserved",
                         encode_payload(FactObserved{"fact-" + std::to_string(i), "", 2}),
                         {}});
    }
    store.append(stream, eventstore::ExpectedVersion::any(), batch);

    auto loaded = load_process(store, stream);
    EXPECT_EQ(loaded.version, static_cast<std::int64_t>(batch.size()));
    EXPECT_EQ(loaded.state.facts.size(), eventstore::kLoadPage + 5);
    EXPECT_EQ(loaded.origin.correlation_id, "a");
    EXPECT_EQ(loaded.last_event_id, batch.back().event_id);

    auto up_to = load_process(store, stream, {.up_to = 3});
    EXPECT_EQ(up_to.version, 3);
    EXPECT_EQ(up_to.state.facts.size(), 2u);
}

TEST(ProcessStream, AnUnreadableEventStopsTheRunnerButNotTheView) {
    platform::ManualClock clock;
    eventstore::MemoryStore store{clock};
    const std::string stream = "saga.fulfillment-a";
    store.append(
        stream, eventstore::ExpectedVersion::any(),
        {{platform::new_uuid(), "SomethingNew", {}, {}},
         {platform::new_uuid(), "FactObserved", encode_payload(FactObserved{"fact", "", 2}), {}}});
    EXPECT_THROW(load_process(store, stream), platform::InvalidInput);
    auto shown = load_process(store, stream, {.unreadable = Unreadable::kSkip});
    EXPECT_EQ(shown.version, 2);
    EXPECT_TRUE(shown.state.has("fact"));
}

}  // namespace
}  // namespace ordo::sagas
