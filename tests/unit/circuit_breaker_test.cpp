// The circuit breaker's states, windows and cool-downs, and the breaker a fleet shares through a
// store.

#include "platform/core/circuit_breaker.hpp"

#include <map>

#include <gtest/gtest.h>

#include "platform/core/shared_breaker.hpp"

namespace ordo::platform {
namespace {

using namespace std::chrono_literals;

struct Recorder {
    std::vector<BreakerTransition> transitions;
    CircuitBreaker::OnTransition callback() {
        return [this](const BreakerTransition& t) { transitions.push_back(t); };
    }
    std::vector<std::pair<BreakerState, BreakerState>> moves() const {
        std::vector<std::pair<BreakerState, BreakerState>> out;
        for (const auto& t : transitions) out.emplace_back(t.from, t.to);
        return out;
    }
};

BreakerOptions options() {
    BreakerOptions o;
    o.window_calls = 10;
    o.minimum_calls = 4;
    o.failure_rate = 0.5;
    o.consecutive_failures = 3;
    o.cool_down = 1000ms;
    o.max_cool_down = 5000ms;
    o.growth = 2.0;
    o.jitter = 0.0;
    o.half_open_probes = 1;
    o.probe_timeout = 2000ms;
    return o;
}

CircuitBreaker::Random fixed(double value) {
    return [value] { return value; };
}

void fail(CircuitBreaker& b, int times) {
    for (int i = 0; i < times; ++i) {
        ASSERT_TRUE(b.allow());
        b.record(CallOutcome::failure);
    }
}

TEST(CircuitBreaker, StaysClosedOnSuccessesAndIgnoredFailures) {
    ManualClock clock;
    Recorder r;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5), r.callback()};
    for (int i = 0; i < 50; ++i) {
        ASSERT_TRUE(b.allow());
        b.record(i % 2 ? CallOutcome::success : CallOutcome::ignored);
    }
    EXPECT_EQ(b.state(), BreakerState::closed);
    EXPECT_TRUE(r.transitions.empty());
}

TEST(CircuitBreaker, PermanentFailuresAreIgnoredTransientOnesCount) {
    EXPECT_EQ(outcome_of(FailureKind::transient), CallOutcome::failure);
    EXPECT_EQ(outcome_of(FailureKind::permanent), CallOutcome::ignored);
}

TEST(CircuitBreaker, OpensOnConsecutiveFailures) {
    ManualClock clock;
    Recorder r;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5), r.callback()};
    fail(b, 2);
    EXPECT_EQ(b.state(), BreakerState::closed);
    fail(b, 1);
    EXPECT_EQ(b.state(), BreakerState::open);
    EXPECT_FALSE(b.allow());
    ASSERT_EQ(r.transitions.size(), 1u);
    EXPECT_EQ(r.transitions[0].breaker, "sink");
    EXPECT_EQ(r.transitions[0].from, BreakerState::closed);
    EXPECT_EQ(r.transitions[0].to, BreakerState::open);
    EXPECT_EQ(r.transitions[0].reason, "3 failures in a row");
}

TEST(CircuitBreaker, OpensOnFailureRateOnlyAfterMinimumCalls) {
    ManualClock clock;
    auto o = options();
    o.consecutive_failures = 0;  // rate only
    CircuitBreaker b{"sink", o, clock, fixed(0.5)};
    ASSERT_TRUE(b.allow());
    b.record(CallOutcome::failure);
    ASSERT_TRUE(b.allow());
    b.record(CallOutcome::failure);
    ASSERT_TRUE(b.allow());
    b.record(CallOutcome::success);
    EXPECT_EQ(b.state(), BreakerState::closed) << "3 calls are below the minimum of 4";
    ASSERT_TRUE(b.allow());
    b.record(CallOutcome::success);
    EXPECT_EQ(b.state(), BreakerState::open) << "2 of 4 failed: 50 %";
}

TEST(CircuitBreaker, CountWindowForgetsOldFailures) {
    ManualClock clock;
    auto o = options();
    o.consecutive_failures = 0;
    o.window_calls = 4;
    CircuitBreaker b{"sink", o, clock, fixed(0.5)};
    b.record(CallOutcome::failure);
    for (int i = 0; i < 3; ++i) b.record(CallOutcome::success);  // 1 of 4
    EXPECT_EQ(b.state(), BreakerState::closed);
    for (int i = 0; i < 3; ++i) b.record(CallOutcome::success);  // the failure left the window
    b.record(CallOutcome::failure);
    EXPECT_EQ(b.state(), BreakerState::closed) << "1 of the last 4";
}

TEST(CircuitBreaker, TimeWindowForgetsOldCalls) {
    ManualClock clock;
    auto o = options();
    o.window = BreakerOptions::Window::time;
    o.window_duration = 10s;
    o.consecutive_failures = 0;
    CircuitBreaker b{"sink", o, clock, fixed(0.5)};
    b.record(CallOutcome::failure);
    b.record(CallOutcome::failure);
    b.record(CallOutcome::failure);
    clock.advance(11s);
    b.record(CallOutcome::success);
    b.record(CallOutcome::success);
    b.record(CallOutcome::success);
    b.record(CallOutcome::success);
    EXPECT_EQ(b.state(), BreakerState::closed) << "the failures are older than the window";
    b.record(CallOutcome::failure);
    b.record(CallOutcome::failure);
    b.record(CallOutcome::failure);
    b.record(CallOutcome::failure);
    EXPECT_EQ(b.state(), BreakerState::open);
}

TEST(CircuitBreaker, SlowSuccessCountsAsFailure) {
    ManualClock clock;
    auto o = options();
    o.slow_call = 500ms;
    CircuitBreaker b{"sink", o, clock, fixed(0.5)};
    for (int i = 0; i < 3; ++i) b.record(CallOutcome::success, 600ms);
    EXPECT_EQ(b.state(), BreakerState::open);
}

TEST(CircuitBreaker, HalfOpensAfterCoolDownAndSuccessCloses) {
    ManualClock clock;
    Recorder r;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5), r.callback()};
    fail(b, 3);
    clock.advance(999ms);
    EXPECT_FALSE(b.allow());
    clock.advance(1ms);
    EXPECT_EQ(b.state(), BreakerState::half_open);
    EXPECT_TRUE(b.allow()) << "one probe";
    EXPECT_FALSE(b.allow()) << "bounded: one probe at a time";
    b.record(CallOutcome::success);
    EXPECT_EQ(b.state(), BreakerState::closed);
    EXPECT_TRUE(b.allow());
    using S = BreakerState;
    EXPECT_EQ(r.moves(),
              (std::vector<std::pair<S, S>>{
                  {S::closed, S::open}, {S::open, S::half_open}, {S::half_open, S::closed}}));
}

TEST(CircuitBreaker, FailedProbeReopensWithGrowingCoolDownUpToTheCap) {
    ManualClock clock;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5)};
    fail(b, 3);
    for (auto expected : {2000ms, 4000ms, 5000ms, 5000ms}) {
        clock.advance(60s);
        ASSERT_TRUE(b.allow());
        b.record(CallOutcome::failure);
        ASSERT_EQ(b.state(), BreakerState::open);
        EXPECT_EQ(b.open_until() - clock.steady_now(), expected);
    }
    clock.advance(60s);
    ASSERT_TRUE(b.allow());
    b.record(CallOutcome::success);
    EXPECT_EQ(b.level(), 0);
    fail(b, 3);
    EXPECT_EQ(b.open_until() - clock.steady_now(), 1000ms) << "success reset the growth";
}

TEST(CircuitBreaker, CoolDownIsJittered) {
    ManualClock clock;
    auto o = options();
    o.jitter = 0.2;
    CircuitBreaker low{"a", o, clock, fixed(0.0)};
    CircuitBreaker high{"b", o, clock, fixed(0.999999)};
    EXPECT_EQ(low.cool_down_for(0), 800ms);
    EXPECT_EQ(high.cool_down_for(0), 1200ms);
}

TEST(CircuitBreaker, ProbeThatNeverReportsTimesOutBackToOpen) {
    ManualClock clock;
    Recorder r;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5), r.callback()};
    fail(b, 3);
    clock.advance(1s);
    ASSERT_TRUE(b.allow());
    clock.advance(2s);
    EXPECT_EQ(b.state(), BreakerState::open);
    EXPECT_EQ(r.transitions.back().reason, "probe timed out");
    clock.advance(2s);
    EXPECT_TRUE(b.allow()) << "a new probe after the longer cool-down";
}

TEST(CircuitBreaker, IgnoredProbeReleasesItsPermit) {
    ManualClock clock;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5)};
    fail(b, 3);
    clock.advance(1s);
    ASSERT_TRUE(b.allow());
    b.record(CallOutcome::ignored);
    EXPECT_EQ(b.state(), BreakerState::half_open);
    EXPECT_TRUE(b.allow());
}

TEST(CircuitBreaker, ResultOfACallStartedBeforeOpeningChangesNothing) {
    ManualClock clock;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5)};
    fail(b, 3);
    b.record(CallOutcome::success);
    EXPECT_EQ(b.state(), BreakerState::open);
}

TEST(CircuitBreaker, AdoptTakesAnotherPartysState) {
    ManualClock clock;
    Recorder r;
    CircuitBreaker b{"sink", options(), clock, fixed(0.5), r.callback()};
    b.adopt(BreakerState::open, clock.steady_now() + 3s, 2, "shared");
    EXPECT_EQ(b.state(), BreakerState::open);
    EXPECT_EQ(b.level(), 2);
    clock.advance(3s);
    EXPECT_EQ(b.state(), BreakerState::half_open);
    b.adopt(BreakerState::half_open, {}, 2, "shared");
    EXPECT_EQ(r.transitions.size(), 2u) << "adopting the current state is no transition";
}

TEST(CircuitBreaker, StateNames) {
    for (auto s : {BreakerState::closed, BreakerState::open, BreakerState::half_open}) {
        EXPECT_EQ(parse_breaker_state(to_string(s)), s);
    }
    EXPECT_THROW(parse_breaker_state("ajar"), InvalidInput);
}

// A store in memory, with the same compare-and-set contract as the NATS KV bucket.
class MemoryStore final : public BreakerStore {
   public:
    bool reachable = true;
    std::optional<Entry> get(const std::string& key) override {
        check();
        auto it = entries.find(key);
        if (it == entries.end()) return std::nullopt;
        return it->second;
    }
    std::optional<std::uint64_t> create(const std::string& key,
                                        const SharedBreakerState& value) override {
        check();
        if (entries.count(key)) return std::nullopt;
        entries[key] = {value, ++revision};
        return revision;
    }
    std::optional<std::uint64_t> update(const std::string& key, const SharedBreakerState& value,
                                        std::uint64_t last) override {
        check();
        auto it = entries.find(key);
        if (it == entries.end() || it->second.revision != last) return std::nullopt;
        it->second = {value, ++revision};
        return revision;
    }
    std::map<std::string, Entry> entries;
    std::uint64_t revision = 0;

   private:
    void check() const {
        if (!reachable) throw Unavailable("store down");
    }
};

struct Fleet {
    ManualClock clock;
    MemoryStore store;
    CircuitBreaker local_a{"sink", options(), clock, fixed(0.5)};
    CircuitBreaker local_b{"sink", options(), clock, fixed(0.5)};
    SharedBreaker a{local_a, &store, "sink", "a", clock, Logger::null_logger(), 0ms};
    SharedBreaker b{local_b, &store, "sink", "b", clock, Logger::null_logger(), 0ms};
};

TEST(SharedBreaker, SharedStateRoundTrips) {
    SharedBreakerState s{BreakerState::half_open, 12, 3, "p", 34, "w"};
    auto back = SharedBreakerState::from_json(s.to_json());
    EXPECT_EQ(back.state, s.state);
    EXPECT_EQ(back.open_until_ms, 12);
    EXPECT_EQ(back.level, 3);
    EXPECT_EQ(back.prober, "p");
    EXPECT_EQ(back.probe_until_ms, 34);
    EXPECT_EQ(back.by, "w");
    EXPECT_THROW(SharedBreakerState::from_json("{}"), InvalidInput);
}

TEST(SharedBreaker, OneInstanceOpeningOpensTheFleet) {
    Fleet f;
    ASSERT_TRUE(f.b.allow());
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    EXPECT_EQ(f.a.state(), BreakerState::open);
    EXPECT_FALSE(f.b.allow());
    EXPECT_EQ(f.b.state(), BreakerState::open) << "b adopted a's verdict";
}

TEST(SharedBreaker, ExactlyOneInstanceProbesAndItsSuccessClosesTheFleet) {
    Fleet f;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    f.clock.advance(1s);
    bool b_probes = f.b.allow();
    bool a_probes = f.a.allow();
    EXPECT_TRUE(b_probes) << "the first to claim the probe wins it";
    EXPECT_FALSE(a_probes);
    EXPECT_EQ(f.a.state(), BreakerState::half_open);
    EXPECT_FALSE(f.b.allow()) << "one probe at a time";
    f.b.record(CallOutcome::success);
    EXPECT_EQ(f.b.state(), BreakerState::closed);
    EXPECT_TRUE(f.a.allow());
    EXPECT_EQ(f.a.state(), BreakerState::closed);
}

TEST(SharedBreaker, FailedProbeReopensTheFleetForLonger) {
    Fleet f;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    f.clock.advance(1s);
    ASSERT_TRUE(f.a.allow());
    f.a.record(CallOutcome::failure);
    EXPECT_FALSE(f.b.allow());
    EXPECT_EQ(f.b.state(), BreakerState::open);
    f.clock.advance(1s);
    EXPECT_FALSE(f.b.allow()) << "the cool-down grew to 2 s";
    f.clock.advance(1s);
    EXPECT_TRUE(f.b.allow());
}

TEST(SharedBreaker, ASilentProberLosesItsClaimAfterTheProbeTimeout) {
    Fleet f;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    f.clock.advance(1s);
    ASSERT_TRUE(f.a.allow());  // a claims the probe and then dies
    f.clock.advance(1s);
    EXPECT_FALSE(f.b.allow());
    f.clock.advance(1s);
    EXPECT_TRUE(f.b.allow()) << "the claim lapsed; b probes";
}

TEST(SharedBreaker, AProbeThatTimedOutIsNotFollowedAtOnceByAnother) {
    Fleet f;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    f.clock.advance(1s);
    ASSERT_TRUE(f.a.allow());  // a claims the probe; the sink hangs
    f.clock.advance(2s);
    EXPECT_FALSE(f.a.allow()) << "the probe timed out: open again, for the longer cool-down";
    EXPECT_EQ(f.store.entries.at("sink").value.state, BreakerState::open);
    EXPECT_EQ(f.store.entries.at("sink").value.level, 1);
    EXPECT_FALSE(f.b.allow()) << "b does not take up the lapsed claim";
    EXPECT_EQ(f.b.state(), BreakerState::open);
    f.clock.advance(1s);
    EXPECT_FALSE(f.a.allow());
    EXPECT_FALSE(f.b.allow());
    f.clock.advance(1s);
    bool a_probes = f.a.allow();
    bool b_probes = f.b.allow();
    EXPECT_TRUE(a_probes);
    EXPECT_FALSE(b_probes) << "one probe for the fleet";
}

TEST(SharedBreaker, ALateOutcomeOfATimedOutProbePublishesTheReopening) {
    Fleet f;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    f.clock.advance(1s);
    ASSERT_TRUE(f.a.allow());
    f.clock.advance(2s);
    f.a.record(CallOutcome::failure);  // the probe's outcome, after its timeout
    EXPECT_EQ(f.a.state(), BreakerState::open);
    const auto& shared = f.store.entries.at("sink").value;
    EXPECT_EQ(shared.state, BreakerState::open);
    EXPECT_EQ(shared.level, 1);
    EXPECT_TRUE(shared.prober.empty());
    EXPECT_FALSE(f.b.allow()) << "b waits out the longer cool-down";
    EXPECT_EQ(f.b.state(), BreakerState::open);
    f.clock.advance(2s);
    EXPECT_TRUE(f.b.allow());
}

TEST(SharedBreaker, UnreachableStoreFallsBackToTheLocalBreaker) {
    Fleet f;
    f.store.reachable = false;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    EXPECT_TRUE(f.a.degraded());
    EXPECT_EQ(f.a.state(), BreakerState::open);
    EXPECT_TRUE(f.b.allow()) << "b knows nothing of a's opening";
    f.clock.advance(1s);
    EXPECT_TRUE(f.a.allow()) << "a probes on its own";
    f.a.record(CallOutcome::success);
    EXPECT_EQ(f.a.state(), BreakerState::closed);
}

TEST(SharedBreaker, AnOpeningMadeWhileTheStoreWasAwayReachesTheFleetWhenItReturns) {
    Fleet f;
    f.store.reachable = false;
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(f.a.allow());
        f.a.record(CallOutcome::failure);
    }
    f.store.reachable = true;
    f.clock.advance(500ms);
    EXPECT_FALSE(f.a.allow()) << "still open, and the store is looked at again only later";
    EXPECT_TRUE(f.a.degraded());
    f.clock.advance(5s);
    f.local_a.adopt(BreakerState::open, f.clock.steady_now() + 1s, 0, "still failing");
    EXPECT_FALSE(f.a.allow());
    EXPECT_FALSE(f.a.degraded());
    EXPECT_FALSE(f.b.allow()) << "b learns of a's opening from the store";
    EXPECT_EQ(f.b.state(), BreakerState::open);
}

TEST(SharedBreaker, WithoutAStoreItIsTheLocalBreaker) {
    ManualClock clock;
    CircuitBreaker local{"sink", options(), clock, fixed(0.5)};
    SharedBreaker s{local, nullptr, "sink", "a", clock, Logger::null_logger()};
    for (int i = 0; i < 3; ++i) {
        ASSERT_TRUE(s.allow());
        s.record(CallOutcome::failure);
    }
    EXPECT_FALSE(s.allow());
    EXPECT_EQ(s.state(), BreakerState::open);
}

}  // namespace
}  // namespace ordo::platform
