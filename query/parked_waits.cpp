// Whether a read's partitions have passed a token, and the parking, settling and draining of
// waits against progress and deadlines.
#include "query/parked_waits.hpp"

namespace ordo::query {

void Progress::set(const std::string& projection, int partition, eventstore::Checkpoint at,
                   std::optional<int> shard) {
    at_[{projection, partition}] = At{at, shard};
}

bool Progress::passed(const Reads& reads, eventstore::Checkpoint token, int shard) const {
    auto partition_passed = [&](int partition) {
        auto it = at_.find({reads.projection, partition});
        if (it == at_.end()) return false;
        if (it->second.shard && *it->second.shard != shard) return true;
        return it->second.at >= token;
    };
    if (reads.partition) return partition_passed(*reads.partition);
    for (int p = 0; p < partitions_; ++p) {
        if (!partition_passed(p)) return false;
    }
    return true;
}

bool ParkedWaits::park(Id id, Reads reads, eventstore::Checkpoint token, Clock::time_point deadline,
                       int shard) {
    if (waits_.size() >= capacity_ || waits_.count(id) != 0) return false;
    waits_.emplace(id, Wait{std::move(reads), token, deadline, shard});
    return true;
}

std::vector<ParkedWaits::Over> ParkedWaits::settle(const Progress& progress,
                                                   Clock::time_point now) {
    std::vector<Over> over;
    for (auto it = waits_.begin(); it != waits_.end();) {
        const bool passed = progress.passed(it->second.reads, it->second.token, it->second.shard);
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
