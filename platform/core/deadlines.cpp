// The deadline set as two indexes kept in step: by time, to take what is due, and by id, to
// disarm.
#include "platform/core/deadlines.hpp"

namespace ordo::platform {

Deadlines::Id Deadlines::arm(TimePoint at) {
    const Id id = next_id_++;
    by_id_.emplace(id, by_time_.emplace(at, id));
    return id;
}

bool Deadlines::disarm(Id id) {
    auto it = by_id_.find(id);
    if (it == by_id_.end()) return false;
    by_time_.erase(it->second);
    by_id_.erase(it);
    return true;
}

std::vector<Deadlines::Id> Deadlines::take_due(TimePoint now) {
    std::vector<Id> due;
    while (!by_time_.empty() && by_time_.begin()->first <= now) {
        due.push_back(by_time_.begin()->second);
        by_id_.erase(by_time_.begin()->second);
        by_time_.erase(by_time_.begin());
    }
    return due;
}

std::optional<Deadlines::TimePoint> Deadlines::next() const {
    if (by_time_.empty()) return std::nullopt;
    return by_time_.begin()->first;
}

}  // namespace ordo::platform
