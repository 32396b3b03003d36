// The circuit breaker's state machine: calls and probes admitted, outcomes counted in the
// window, trips, cool-downs with growth and jitter, transitions reported off the lock.
#include "platform/core/circuit_breaker.hpp"

#include <algorithm>
#include <cmath>

namespace ordo::platform {

const char* to_string(BreakerState state) {
    switch (state) {
        case BreakerState::closed:
            return "closed";
        case BreakerState::open:
            return "open";
        case BreakerState::half_open:
            return "half_open";
    }
    return "closed";
}

BreakerState parse_breaker_state(const std::string& text) {
    if (text == "closed") return BreakerState::closed;
    if (text == "open") return BreakerState::open;
    if (text == "half_open") return BreakerState::half_open;
    throw InvalidInput("not a breaker state: " + text);
}

CallOutcome outcome_of(FailureKind kind) {
    return kind == FailureKind::transient ? CallOutcome::failure : CallOutcome::ignored;
}

CircuitBreaker::CircuitBreaker(std::string name, BreakerOptions options, const Clock& clock,
                               Random random, OnTransition on_transition)
    : name_{std::move(name)},
      options_{options},
      clock_{clock},
      random_{std::move(random)},
      on_transition_{std::move(on_transition)} {
    options_.half_open_probes = std::max<std::size_t>(options_.half_open_probes, 1);
    options_.window_calls = std::max<std::size_t>(options_.window_calls, 1);
}

std::chrono::milliseconds CircuitBreaker::cool_down_for(int level) {
    double base = static_cast<double>(options_.cool_down.count()) *
                  std::pow(std::max(options_.growth, 1.0), std::max(level, 0));
    base = std::min(base, static_cast<double>(options_.max_cool_down.count()));
    double spread = random_ ? (random_() * 2.0 - 1.0) * options_.jitter : 0.0;
    return std::chrono::milliseconds{
        std::max<std::int64_t>(1, std::llround(base * (1.0 + spread)))};
}

bool CircuitBreaker::allow() {
    Pending pending;
    bool allowed = false;
    {
        std::lock_guard lock{mutex_};
        advance(pending);
        switch (state_) {
            case BreakerState::closed:
                allowed = true;
                break;
            case BreakerState::open:
                allowed = false;
                break;
            case BreakerState::half_open:
                allowed = probes_.size() < options_.half_open_probes;
                if (allowed) probes_.push_back(clock_.steady_now());
                break;
        }
    }
    fire(pending);
    return allowed;
}

void CircuitBreaker::record(CallOutcome outcome, std::chrono::nanoseconds elapsed) {
    if (outcome == CallOutcome::success && options_.slow_call.count() > 0 &&
        elapsed >= options_.slow_call) {
        outcome = CallOutcome::failure;
    }
    Pending pending;
    {
        std::lock_guard lock{mutex_};
        advance(pending);
        switch (state_) {
            case BreakerState::closed: {
                if (outcome == CallOutcome::ignored) break;
                bool failed = outcome == CallOutcome::failure;
                window_.push_back({clock_.steady_now(), failed});
                consecutive_ = failed ? consecutive_ + 1 : 0;
                prune();
                std::string reason;
                if (should_trip(reason)) open(0, reason, pending);
                break;
            }
            case BreakerState::open:
                // A call that started before the breaker opened: it changes nothing.
                break;
            case BreakerState::half_open:
                if (!probes_.empty()) probes_.pop_front();
                if (outcome == CallOutcome::success) {
                    level_ = 0;
                    move(BreakerState::closed, "probe succeeded", pending);
                } else if (outcome == CallOutcome::failure) {
                    open(level_ + 1, "probe failed", pending);
                }
                break;
        }
    }
    fire(pending);
}

BreakerState CircuitBreaker::state() {
    Pending pending;
    BreakerState now;
    {
        std::lock_guard lock{mutex_};
        advance(pending);
        now = state_;
    }
    fire(pending);
    return now;
}

std::chrono::steady_clock::time_point CircuitBreaker::open_until() {
    std::lock_guard lock{mutex_};
    return until_;
}

int CircuitBreaker::level() {
    std::lock_guard lock{mutex_};
    return level_;
}

void CircuitBreaker::adopt(BreakerState state, std::chrono::steady_clock::time_point until,
                           int level, const std::string& reason) {
    Pending pending;
    {
        std::lock_guard lock{mutex_};
        level_ = level;
        if (state == BreakerState::open) until_ = until;
        if (state != state_) {
            if (state == BreakerState::half_open) probes_.clear();
            move(state, reason, pending);
        }
    }
    fire(pending);
}

void CircuitBreaker::advance(Pending& out) {
    const auto now = clock_.steady_now();
    if (state_ == BreakerState::open && now >= until_) {
        move(BreakerState::half_open, "cool-down elapsed", out);
    }
    if (state_ == BreakerState::half_open && !probes_.empty() &&
        now - probes_.front() >= options_.probe_timeout) {
        open(level_ + 1, "probe timed out", out);
    }
}

void CircuitBreaker::move(BreakerState to, const std::string& reason, Pending& out) {
    const auto from = state_;
    state_ = to;
    probes_.clear();
    if (to == BreakerState::closed) {
        window_.clear();
        consecutive_ = 0;
    }
    out.push_back({name_, from, to, reason});
}

void CircuitBreaker::open(int level, const std::string& reason, Pending& out) {
    level_ = level;
    until_ = clock_.steady_now() + cool_down_for(level);
    move(BreakerState::open, reason, out);
}

void CircuitBreaker::prune() {
    if (options_.window == BreakerOptions::Window::count) {
        while (window_.size() > options_.window_calls) window_.pop_front();
        return;
    }
    const auto oldest = clock_.steady_now() - options_.window_duration;
    while (!window_.empty() && window_.front().at < oldest) window_.pop_front();
}

bool CircuitBreaker::should_trip(std::string& reason) const {
    if (options_.consecutive_failures > 0 && consecutive_ >= options_.consecutive_failures) {
        reason = std::to_string(consecutive_) + " failures in a row";
        return true;
    }
    if (window_.size() < options_.minimum_calls) return false;
    auto failed = static_cast<std::size_t>(
        std::count_if(window_.begin(), window_.end(), [](const Call& c) { return c.failed; }));
    double rate = static_cast<double>(failed) / static_cast<double>(window_.size());
    if (rate >= options_.failure_rate) {
        reason = std::to_string(failed) + " of the last " + std::to_string(window_.size()) +
                 " calls failed";
        return true;
    }
    return false;
}

void CircuitBreaker::fire(const Pending& transitions) const {
    if (!on_transition_) return;
    for (const auto& t : transitions) on_transition_(t);
}

}  // namespace ordo::platform
