// A circuit breaker over calls to a dependency: closed, open and half-open, a sliding window
// of outcomes, and a cool-down that grows with each reopening. Time and jitter are injected.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "platform/core/clock.hpp"
#include "platform/core/errors.hpp"

namespace ordo::platform {

// Gauge values of ordo_breaker_state: closed 0, open 1, half-open 2.
enum class BreakerState { closed = 0, open = 1, half_open = 2 };

const char* to_string(BreakerState state);
BreakerState parse_breaker_state(const std::string& text);  // throws InvalidInput

// How a finished call counts. A transient failure is the dependency's fault and counts
// against it; a permanent one is the request's own (a poison event) and says nothing about
// the dependency, so it is ignored, as are calls the caller abandoned.
enum class CallOutcome { success, failure, ignored };

CallOutcome outcome_of(FailureKind kind);

struct BreakerOptions {
    enum class Window { count, time };
    Window window = Window::count;
    std::size_t window_calls = 20;                      // count window: the last N calls
    std::chrono::milliseconds window_duration{30'000};  // time window: calls this recent
    // No failure-rate verdict on fewer calls than this: two failures out of three is noise.
    std::size_t minimum_calls = 10;
    double failure_rate = 0.5;             // open at or above this share of failures in the window
    std::size_t consecutive_failures = 5;  // open after this many in a row; 0 turns it off
    // A success that took this long counts as a failure; zero turns it off.
    std::chrono::milliseconds slow_call{0};
    // Open lasts cool_down, times growth for each reopening from half-open in a row, capped
    // at max_cool_down, then spread by ± jitter so a fleet does not probe in lockstep.
    std::chrono::milliseconds cool_down{1000};
    std::chrono::milliseconds max_cool_down{60'000};
    double growth = 2.0;
    double jitter = 0.2;
    std::size_t half_open_probes = 1;  // calls let through at once in half-open
    // A probe that reports nothing within this counts as failed, so half-open cannot stick.
    std::chrono::milliseconds probe_timeout{10'000};
};

struct BreakerTransition {
    std::string breaker;
    BreakerState from;
    BreakerState to;
    std::string reason;
};

// A circuit breaker: closed lets calls through and watches a sliding window of outcomes;
// open refuses them for a cool-down; half-open lets a bounded number of probes through and
// closes on a success or reopens, with a longer cool-down, on a failure.
//
// Pure: time comes from the injected clock and jitter from the injected random source
// (uniform in [0, 1)). Every transition goes to `on_transition`, called after the
// breaker's lock is released, so the owner can log and count it. Thread-safe.
class CircuitBreaker {
   public:
    using Random = std::function<double()>;
    using OnTransition = std::function<void(const BreakerTransition&)>;

    CircuitBreaker(std::string name, BreakerOptions options, const Clock& clock, Random random,
                   OnTransition on_transition = {});

    const std::string& name() const { return name_; }
    const BreakerOptions& options() const { return options_; }

    // Whether a call may go now. A true answer in half-open is a probe permit: the caller
    // must report the call's outcome with record().
    bool allow();
    void record(CallOutcome outcome, std::chrono::nanoseconds elapsed = {});

    // The state now (an elapsed cool-down or probe timeout is applied first).
    BreakerState state();
    // When an open breaker will half-open; meaningful only while open.
    std::chrono::steady_clock::time_point open_until();
    // Reopenings from half-open in a row: how much the cool-down has grown.
    int level();

    // Takes the state another party decided (a fleet's shared breaker): `until` is when an
    // open state ends, `level` the growth so far. No-op when nothing changes.
    void adopt(BreakerState state, std::chrono::steady_clock::time_point until, int level,
               const std::string& reason);

    // The cool-down an opening at `level` gets, jitter included.
    std::chrono::milliseconds cool_down_for(int level);

   private:
    struct Call {
        std::chrono::steady_clock::time_point at;
        bool failed;
    };
    using Pending = std::vector<BreakerTransition>;

    void advance(Pending& out);  // applies elapsed cool-down and probe timeouts
    void move(BreakerState to, const std::string& reason, Pending& out);
    void open(int level, const std::string& reason, Pending& out);
    void prune();
    bool should_trip(std::string& reason) const;
    void fire(const Pending& transitions) const;

    std::string name_;
    BreakerOptions options_;
    const Clock& clock_;
    Random random_;
    OnTransition on_transition_;

    std::mutex mutex_;
    BreakerState state_ = BreakerState::closed;
    std::deque<Call> window_;
    std::size_t consecutive_ = 0;
    int level_ = 0;
    std::chrono::steady_clock::time_point until_{};
    std::deque<std::chrono::steady_clock::time_point> probes_;  // start of each probe in flight
};

}  // namespace ordo::platform
