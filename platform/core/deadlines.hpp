// A set of armed deadlines, each firing once or disarmed, for an owner that sleeps until the
// next one (the connection pool's watchdog).
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <vector>

namespace ordo::platform {

// A set of armed deadlines: which have passed, and when the next falls due. Each armed
// deadline either fires once (take_due) or is disarmed, never both. Not thread-safe: its
// owner locks.
class Deadlines {
   public:
    using Id = std::uint64_t;
    using TimePoint = std::chrono::steady_clock::time_point;

    Id arm(TimePoint at);
    // False when `id` is not armed (it fired already, or was disarmed).
    bool disarm(Id id);
    // Removes and returns the deadlines at or before `now`, earliest first.
    std::vector<Id> take_due(TimePoint now);
    // The earliest armed deadline.
    std::optional<TimePoint> next() const;
    std::size_t size() const { return by_id_.size(); }

   private:
    Id next_id_ = 1;
    std::multimap<TimePoint, Id> by_time_;
    std::map<Id, std::multimap<TimePoint, Id>::iterator> by_id_;
};

}  // namespace ordo::platform
