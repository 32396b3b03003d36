#pragma once

// RecentSettlements: the bounded memory of settled orders that inventory and accounts keep.

#include <algorithm>
#include <cstddef>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace ordo::domain {

// How many settled orders a stream remembers. Large enough that any duplicate the
// process layer can still send (a command in flight while its order settled) finds its
// order here; small enough that a stream's state stays a few tens of KiB however many
// orders it has seen.
inline constexpr std::size_t kRecentSettlements = 1000;

// The orders whose reservation (or hold) on one stream ended most recently, and how, oldest
// first: what a decider needs to refuse or ignore a late duplicate of a settled order,
// without a set of order ids that grows with every order forever. A pure function of the
// stream's history: each settlement event appends its order, and the oldest entry is
// forgotten once more than kRecentSettlements are held.
template <class Outcome>
class RecentSettlements {
   public:
    using Entry = std::pair<std::string, Outcome>;

    std::optional<Outcome> find(const std::string& order_id) const {
        auto it = std::find_if(entries_.rbegin(), entries_.rend(),
                               [&](const Entry& e) { return e.first == order_id; });
        if (it == entries_.rend()) return std::nullopt;
        return it->second;
    }

    void record(std::string order_id, Outcome outcome) {
        entries_.emplace_back(std::move(order_id), outcome);
        while (entries_.size() > kRecentSettlements) entries_.pop_front();
    }

    const std::deque<Entry>& entries() const { return entries_; }
    std::size_t size() const { return entries_.size(); }
    bool operator==(const RecentSettlements&) const = default;

   private:
    std::deque<Entry> entries_;
};

}  // namespace ordo::domain
