// A waiting line per key under one mutex: a released turn goes to the first waiter; a full
// line or a passed deadline throws Overloaded.
#include "platform/core/keyed_turns.hpp"

#include <utility>

#include "platform/core/errors.hpp"

namespace ordo::platform {

KeyedTurns::Turn::Turn(KeyedTurns& owner, std::string key) : owner_{&owner}, key_{std::move(key)} {}

KeyedTurns::Turn::Turn(Turn&& other) noexcept
    : owner_{std::exchange(other.owner_, nullptr)}, key_{std::move(other.key_)} {}

KeyedTurns::Turn::~Turn() {
    if (owner_) owner_->release(key_);
}

KeyedTurns::KeyedTurns(Options options) : options_{options} {}

KeyedTurns::Turn KeyedTurns::take(const std::string& key,
                                  std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock{mutex_};
    auto [it, fresh] = lines_.try_emplace(key);
    if (fresh) return Turn{*this, key};
    auto& line = it->second;
    if (line.waiters.size() >= options_.max_waiting_per_key) {
        throw Overloaded("too many commands are waiting for " + key);
    }
    if (waiting_ >= options_.max_waiting) {
        throw Overloaded("too many commands are waiting for their streams");
    }
    Waiter self;
    auto place = line.waiters.insert(line.waiters.end(), &self);
    ++waiting_;
    // `line` stays valid while we wait: a key with waiters is never erased.
    bool granted = self.wake.wait_until(lock, deadline, [&] { return self.granted; });
    --waiting_;
    if (granted) return Turn{*this, key};
    line.waiters.erase(place);
    throw Overloaded("waited too long for the turn of " + key);
}

void KeyedTurns::release(const std::string& key) {
    std::lock_guard lock{mutex_};
    auto it = lines_.find(key);
    if (it == lines_.end()) return;
    auto& waiters = it->second.waiters;
    if (waiters.empty()) {
        lines_.erase(it);
        return;
    }
    auto* next = waiters.front();
    waiters.pop_front();
    next->granted = true;
    next->wake.notify_one();
}

std::size_t KeyedTurns::keys() const {
    std::lock_guard lock{mutex_};
    return lines_.size();
}

std::size_t KeyedTurns::waiting() const {
    std::lock_guard lock{mutex_};
    return waiting_;
}

}  // namespace ordo::platform
