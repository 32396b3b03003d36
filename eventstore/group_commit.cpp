// The leader-and-followers queue of group commit.
#include "eventstore/group_commit.hpp"

#include <algorithm>
#include <utility>

#include "platform/core/errors.hpp"

namespace ordo::eventstore {

GroupCommit::GroupCommit(Options options, Runner runner)
    : options_{options}, runner_{std::move(runner)} {
    options_.max_batch = std::max<std::size_t>(1, options_.max_batch);
    options_.max_in_flight = std::max<std::size_t>(1, options_.max_in_flight);
}

void GroupCommit::run(Deadline deadline, const Work& work, AppendRequest* append) {
    Unit unit;
    unit.work = &work;
    unit.deadline = deadline;
    unit.append = append;
    std::unique_lock lock{mutex_};
    if (queue_.size() >= options_.max_queued) {
        throw platform::Overloaded("too many units of work wait for a transaction");
    }
    queue_.push_back(&unit);
    while (!unit.done) {
        if (!unit.taken && in_flight_ < options_.max_in_flight && queue_.front() == &unit) {
            lead(lock);
            continue;
        }
        // Taken into a batch, or queued again after a lost deadlock (at the front, it leads
        // the next batch): it has started, so only its batch's end ends the wait.
        if (unit.taken || unit.retried) {
            changed_.wait(lock);
            continue;
        }
        if (changed_.wait_until(lock, deadline) == std::cv_status::timeout && !unit.taken &&
            !unit.done) {
            queue_.erase(std::find(queue_.begin(), queue_.end(), &unit));
            changed_.notify_all();  // the next in line may lead now
            throw platform::Overloaded("no transaction came free before the deadline");
        }
    }
    if (unit.error) std::rethrow_exception(unit.error);
}

void GroupCommit::lead(std::unique_lock<std::mutex>& lock) {
    std::vector<Unit*> batch;
    Deadline by = Deadline::min();
    while (!queue_.empty() && batch.size() < options_.max_batch) {
        auto* unit = queue_.front();
        // A unit queued again runs alone: one batch of its own, none shared.
        if (!batch.empty() && (unit->retried || batch.front()->retried)) break;
        queue_.pop_front();
        unit->taken = true;
        batch.push_back(unit);
        by = std::max(by, unit->deadline);
    }
    ++in_flight_;
    ++stats_.batches;
    stats_.units += batch.size();
    stats_.largest = std::max(stats_.largest, batch.size());
    lock.unlock();
    std::exception_ptr failed;
    try {
        runner_(batch, by);
    } catch (...) {
        failed = std::current_exception();
    }
    lock.lock();
    --in_flight_;
    for (auto it = batch.rbegin(); it != batch.rend(); ++it) {
        auto* unit = *it;
        unit->taken = false;
        if (failed) {
            if (!unit->error) unit->error = failed;
        } else if (unit->retry && !unit->retried) {
            unit->retry = false;
            unit->retried = true;
            unit->error = nullptr;
            queue_.push_front(unit);  // in reverse: the batch's order is kept at the front
            continue;
        }
        unit->done = true;
    }
    changed_.notify_all();
}

GroupCommit::Stats GroupCommit::stats() const {
    std::lock_guard lock{mutex_};
    return stats_;
}

std::size_t GroupCommit::queued() const {
    std::lock_guard lock{mutex_};
    return queue_.size();
}

}  // namespace ordo::eventstore
