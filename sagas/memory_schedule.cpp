// The in-memory saga schedule: rows in a map, leases as tokens fenced like leased_until.
#include "sagas/memory_schedule.hpp"

#include <algorithm>

namespace ordo::sagas {

void MemorySchedule::mark_due(const std::string& stream) {
    std::lock_guard lock{mutex_};
    auto [it, inserted] = rows_.try_emplace(stream);
    it->second.row.due_at = clock_.now();
    if (!inserted) ++it->second.marks;
}

std::vector<Claim> MemorySchedule::claim(std::size_t batch, std::chrono::seconds lease) {
    std::lock_guard lock{mutex_};
    const auto now = clock_.now();
    std::vector<std::pair<platform::Clock::time_point, std::string>> due;
    for (const auto& [stream, entry] : rows_) {
        const auto& leased = entry.row.leased_until;
        if (entry.row.due_at <= now && (!leased || *leased < now)) {
            due.emplace_back(entry.row.due_at, stream);
        }
    }
    std::sort(due.begin(), due.end());
    if (due.size() > batch) due.resize(batch);
    std::vector<Claim> claims;
    for (const auto& [at, stream] : due) {
        auto& entry = rows_.at(stream);
        entry.row.leased_until = now + lease;
        entry.lease = lease_token(now + lease);
        claims.push_back(
            {stream, entry.lease, entry.marks,
             std::chrono::duration_cast<std::chrono::milliseconds>(now - entry.row.due_at)});
    }
    return claims;
}

bool MemorySchedule::renew(Claim& claim, std::chrono::seconds lease) {
    std::lock_guard lock{mutex_};
    auto* entry = ours(claim);
    if (!entry) return false;
    const auto until = clock_.now() + lease;
    entry->row.leased_until = until;
    entry->lease = lease_token(until);
    claim.lease = entry->lease;
    return true;
}

void MemorySchedule::reschedule(const Claim& claim,
                                std::optional<std::chrono::milliseconds> wake_in) {
    std::lock_guard lock{mutex_};
    auto* entry = ours(claim);
    if (!entry) return;
    // Under the schedule's lock, as PostgreSQL holds the row: a mark is either counted
    // already or comes after this.
    const bool marked = entry->marks != claim.marks;
    entry->row.leased_until.reset();
    entry->lease.clear();
    if (marked) {
        entry->row.due_at = clock_.now();
    } else if (wake_in) {
        entry->row.due_at = clock_.now() + std::max(std::chrono::milliseconds{0}, *wake_in);
    } else {
        rows_.erase(claim.stream);
    }
}

void MemorySchedule::set_aside(const Claim& claim, std::chrono::seconds delay) {
    std::lock_guard lock{mutex_};
    auto* entry = ours(claim);
    if (!entry) return;
    entry->row.due_at = clock_.now() + delay;
    entry->row.leased_until.reset();
    entry->lease.clear();
}

std::optional<MemorySchedule::Row> MemorySchedule::row(const std::string& stream) const {
    std::lock_guard lock{mutex_};
    auto it = rows_.find(stream);
    if (it == rows_.end()) return std::nullopt;
    return it->second.row;
}

MemorySchedule::Entry* MemorySchedule::ours(const Claim& claim) {
    auto it = rows_.find(claim.stream);
    if (it == rows_.end() || it->second.lease.empty() || it->second.lease != claim.lease) {
        return nullptr;
    }
    return &it->second;
}

// The lease's end, and a count that tells apart two leases ending at the same instant of a
// clock that stands still.
std::string MemorySchedule::lease_token(platform::Clock::time_point until) {
    return std::to_string(until.time_since_epoch().count()) + "#" + std::to_string(++leases_given_);
}

}  // namespace ordo::sagas
