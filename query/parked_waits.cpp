// Whether a read's partitions have passed a token, and the parking, settling and draining of
// waits against progress and deadlines.
#include "query/parked_waits.hpp"

#include <algorithm>

namespace ordo::query {

void Progress::set(const std::string& projection, int partition, eventstore::Checkpoint at) {
    at_[{projection, partition}] = at;
}

bool Progress::passed(const Reads& reads, eventstore::Checkpoint token) const {
    auto partition_passed = [&](int partition) {
        auto it = at_.find({reads.projection, partition});
        return it != at_.end() && it->second >= token;
    };
    if (reads.partition) return partition_passed(*reads.partition);
    if (!reads.among.empty()) {
        return std::all_of(reads.among.begin(), reads.among.end(), partition_passed);
    }
    for (int p = 0; p < partitions_; ++p) {
        if (!partition_passed(p)) return false;
    }
    return true;
}

std::optional<Reads> reads_for_shard(Reads reads, int shard, const std::vector<int>& owners) {
    if (owners.empty()) return reads;
    auto on_shard = [&](int p) {
        return p >= 0 && static_cast<std::size_t>(p) < owners.size() &&
               owners[static_cast<std::size_t>(p)] == shard;
    };
    if (reads.partition) {
        if (!on_shard(*reads.partition)) return std::nullopt;
        return reads;
    }
    reads.among.clear();
    for (int p = 0; p < static_cast<int>(owners.size()); ++p) {
        if (on_shard(p)) reads.among.push_back(p);
    }
    if (reads.among.empty()) return std::nullopt;
    return reads;
}

bool ParkedWaits::park(Id id, Reads reads, eventstore::Checkpoint token,
                       Clock::time_point deadline) {
    if (waits_.size() >= capacity_ || waits_.count(id) != 0) return false;
    waits_.emplace(id, Wait{std::move(reads), token, deadline});
    return true;
}

std::vector<ParkedWaits::Over> ParkedWaits::settle(const Progress& progress,
                                                   Clock::time_point now) {
    std::vector<Over> over;
    for (auto it = waits_.begin(); it != waits_.end();) {
        const bool passed = progress.passed(it->second.reads, it->second.token);
        if (passed || it->second.deadline <= now) {
            over.push_back({it->first, passed});
            it = waits_.erase(it);
        } else {
            ++it;
        }
    }
    return over;
}

std::vector<ParkedWaits::Over> ParkedWaits::drain() {
    std::vector<Over> over;
    for (const auto& [id, wait] : waits_) over.push_back({id, false});
    waits_.clear();
    return over;
}

std::optional<ParkedWaits::Clock::time_point> ParkedWaits::next_deadline() const {
    std::optional<Clock::time_point> next;
    for (const auto& [id, wait] : waits_) {
        if (!next || wait.deadline < *next) next = wait.deadline;
    }
    return next;
}

}  // namespace ordo::query
