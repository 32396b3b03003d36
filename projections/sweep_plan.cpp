// The sweep's plan: which slots to step, advance or pass over.

#include "projections/sweep_plan.hpp"

#include <algorithm>

namespace ordo::projections {
namespace {

using RowIndex = std::map<std::pair<std::string, int>, const CheckpointRow*>;

RowIndex index_rows(const std::vector<CheckpointRow>& rows) {
    RowIndex index;
    for (const auto& row : rows) index[{row.projection, row.partition}] = &row;
    return index;
}

const CheckpointRow* row_of(const RowIndex& index, const Slot& slot) {
    auto it = index.find({slot.projection->name(), slot.partition});
    return it == index.end() ? nullptr : it->second;
}

}  // namespace

bool may_pass_over(const Slot& slot, const CheckpointRow* row) {
    return slot.owned && slot.idle && !slot.settle_pending && slot.poison == 0 &&
           slot.failures == 0 && row != nullptr && row->at == slot.at && row->shard == slot.shard;
}

std::map<ShardKey, Checkpoint> survey_points(const std::vector<Slot>& slots,
                                             const std::vector<CheckpointRow>& rows) {
    const auto index = index_rows(rows);
    std::map<ShardKey, Checkpoint> points;
    for (const auto& slot : slots) {
        if (slot.halted_on || !may_pass_over(slot, row_of(index, slot))) continue;
        auto [it, added] = points.try_emplace(slot.shard, slot.at);
        if (!added) it->second = std::min(it->second, slot.at);
    }
    return points;
}

SweepPlan plan_sweep(const std::vector<Slot>& slots, const std::vector<CheckpointRow>& rows,
                     const std::map<ShardKey, Changes>& changes,
                     std::chrono::steady_clock::time_point now,
                     const std::set<std::string>& breakers_not_closed) {
    const auto index = index_rows(rows);
    SweepPlan plan;
    for (std::size_t i = 0; i < slots.size(); ++i) {
        const Slot& slot = slots[i];
        if (!slot.owned || now < slot.retry_at) continue;
        if (!may_pass_over(slot, row_of(index, slot)) ||
            breakers_not_closed.count(slot.projection->name()) > 0) {
            plan.visit.push_back(i);
            continue;
        }
        if (slot.halted_on) continue;  // waits for its operator's request
        auto found = changes.find(slot.shard);
        if (found == changes.end() || !found->second.complete ||
            found->second.partitions.count(slot.partition) > 0) {
            plan.visit.push_back(i);
            continue;
        }
        const auto& head = found->second.head;
        if (head && slot.at < *head) {
            plan.advance.push_back(i);
            plan.heads[slot.shard] = *head;
        }
    }
    return plan;
}

}  // namespace ordo::projections
