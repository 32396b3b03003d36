// The Clock that breakers, deadlines and retries read time through: the system clock for the
// services, and a manual clock that tests move by hand.
#pragma once

#include <atomic>
#include <chrono>

namespace ordo::platform {

// Time comes through this interface so that breakers, deadlines and retries can be
// driven deterministically in tests.
class Clock {
   public:
    using time_point = std::chrono::system_clock::time_point;
    virtual ~Clock() = default;
    virtual time_point now() const = 0;
    virtual std::chrono::steady_clock::time_point steady_now() const = 0;
};

class SystemClock final : public Clock {
   public:
    time_point now() const override { return std::chrono::system_clock::now(); }
    std::chrono::steady_clock::time_point steady_now() const override {
        return std::chrono::steady_clock::now();
    }
};

// A clock that moves only when told to; safe to read from several threads.
class ManualClock final : public Clock {
   public:
    explicit ManualClock(time_point start = time_point{std::chrono::seconds{1'700'000'000}})
        : offset_{start.time_since_epoch().count()} {}
    time_point now() const override { return time_point{time_point::duration{offset_.load()}}; }
    std::chrono::steady_clock::time_point steady_now() const override {
        return std::chrono::steady_clock::time_point{
            std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                time_point::duration{offset_.load()})};
    }
    void advance(std::chrono::nanoseconds by) {
        offset_ += std::chrono::duration_cast<time_point::duration>(by).count();
    }

   private:
    std::atomic<time_point::rep> offset_;
};

}  // namespace ordo::platform
