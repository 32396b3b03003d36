#include "command/fold_cache.hpp"

#include <utility>

namespace ordo::command {

std::shared_ptr<const eventstore::KnownFold> FoldCache::find(const std::string& stream) {
    std::lock_guard lock{mutex_};
    auto it = entries_.find(stream);
    if (it == entries_.end()) return nullptr;
    order_.splice(order_.begin(), order_, it->second.used);
    return it->second.fold;
}

void FoldCache::keep(const std::string& stream, std::shared_ptr<const eventstore::KnownFold> fold) {
    if (capacity_ == 0 || !fold) return;
    std::lock_guard lock{mutex_};
    if (auto it = entries_.find(stream); it != entries_.end()) {
        it->second.fold = std::move(fold);
        order_.splice(order_.begin(), order_, it->second.used);
        return;
    }
    if (entries_.size() >= capacity_) {
        entries_.erase(order_.back());
        order_.pop_back();
    }
    order_.push_front(stream);
    entries_.emplace(stream, Entry{std::move(fold), order_.begin()});
}

std::size_t FoldCache::size() const {
    std::lock_guard lock{mutex_};
    return entries_.size();
}

}  // namespace ordo::command
