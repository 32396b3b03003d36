// Connections admitted against the total and per-client caps, and released, under one lock.
#include "platform/core/connection_budget.hpp"

namespace ordo::platform {

ConnectionBudget::Verdict ConnectionBudget::admit(const std::string& client) {
    std::lock_guard lock{mutex_};
    if (open_ >= total_) return Verdict::over_total;
    auto& mine = by_client_[client];
    if (mine >= per_client_) {
        if (mine == 0) by_client_.erase(client);
        return Verdict::over_client;
    }
    ++mine;
    ++open_;
    return Verdict::admitted;
}

void ConnectionBudget::release(const std::string& client) {
    std::lock_guard lock{mutex_};
    auto it = by_client_.find(client);
    if (it == by_client_.end()) return;
    if (--it->second == 0) by_client_.erase(it);
    --open_;
}

std::size_t ConnectionBudget::open() const {
    std::lock_guard lock{mutex_};
    return open_;
}

std::size_t ConnectionBudget::open_from(const std::string& client) const {
    std::lock_guard lock{mutex_};
    auto it = by_client_.find(client);
    return it == by_client_.end() ? 0 : it->second;
}

}  // namespace ordo::platform
