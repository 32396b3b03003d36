// Projection progress read from read.projection_progress, and the watch's thread: it reads
// whenever a projector announces a commit, and polls while anything waits as the safety net;
// settles the waits, and runs their wakes outside the lock.
#include "query/progress_watch.hpp"

#include <algorithm>
#include <condition_variable>
#include <map>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::query {

Progress read_progress(pqxx::transaction_base& tx, int partitions,
                       const std::optional<std::string>& projection) {
    Progress progress{partitions};
    auto rows = projection ? tx.exec_prepared("query_progress_of", *projection, partitions)
                           : tx.exec_prepared("query_progress_every", partitions);
    for (const auto& row : rows) {
        progress.set(row[0].as<std::string>(), row[1].as<int>(),
                     eventstore::Checkpoint{eventstore::transaction_id_from_xid8(row[2].c_str()),
                                            row[3].as<std::int64_t>()},
                     row[4].is_null() ? std::nullopt : std::optional<int>{row[4].as<int>()});
    }
    return progress;
}

namespace {
constexpr std::chrono::milliseconds kMinAcquire{200};
}  // namespace

struct ProgressWatch::Impl {
    platform::pg::Pool& pool;
    int partitions;
    platform::Logger log;
    std::chrono::milliseconds pause;

    mutable std::mutex mutex;
    std::condition_variable changed;
    ParkedWaits waits;
    std::map<ParkedWaits::Id, Wake> wakes;
    ParkedWaits::Id next_id = 1;
    bool stopping = false;
    bool committed = false;  // a projector committed progress since the last read
    std::uint64_t polls = 0;
    std::mutex stop_mutex;  // one stop() at a time
    std::thread thread;
    // Last: its thread, which touches the members above, ends first.
    eventstore::AppendListener progress;

    Impl(platform::pg::Pool& p, int n, std::size_t capacity, platform::Logger l,
         std::chrono::milliseconds every)
        : pool{p},
          partitions{n},
          log{std::move(l)},
          pause{every},
          waits{capacity},
          progress{pool.options().url, log, eventstore::AppendNotifier::kProgressChannel, [this] {
                       {
                           std::lock_guard lock{mutex};
                           committed = true;
                       }
                       changed.notify_all();
                   }} {}

    // Takes the wakes of the waits that are over, under the lock.
    std::vector<std::pair<Wake, Outcome>> take(const std::vector<ParkedWaits::Over>& over,
                                               Outcome unpassed) {
        std::vector<std::pair<Wake, Outcome>> due;
        for (const auto& o : over) {
            auto it = wakes.find(o.id);
            due.emplace_back(std::move(it->second), o.passed ? Outcome::passed : unpassed);
            wakes.erase(it);
        }
        return due;
    }

    // Wakes run outside the lock; one that throws (out of memory) must not end the thread.
    void wake_all(std::vector<std::pair<Wake, Outcome>>& due) {
        for (auto& [wake, outcome] : due) {
            try {
                wake(outcome);
            } catch (const std::exception& e) {
                log.error("waking a parked request failed", {{"error", e.what()}});
            }
        }
    }

    void run() {
        std::unique_lock lock{mutex};
        for (;;) {
            changed.wait(lock, [&] { return stopping || !waits.empty(); });
            if (stopping) return;
            committed = false;
            lock.unlock();
            std::optional<Progress> progress;
            try {
                // A connection must come soon: deadlines of the waits are not kept meanwhile.
                progress = pool.transact<pqxx::nontransaction>(
                    std::chrono::steady_clock::now() + std::max(pause * 20, kMinAcquire),
                    [&](auto& tx) { return read_progress(tx, partitions, std::nullopt); });
            } catch (const std::exception& e) {
                log.warn("could not read projection progress", {{"error", e.what()}});
            }
            lock.lock();
            ++polls;
            // Without progress nothing has passed; the waits whose time is up learn that the
            // read models are unavailable, the others keep waiting for a better read.
            auto due =
                progress
                    ? take(waits.settle(*progress, std::chrono::steady_clock::now()),
                           Outcome::timed_out)
                    : take(waits.settle(Progress{partitions}, std::chrono::steady_clock::now()),
                           Outcome::unavailable);
            lock.unlock();
            wake_all(due);
            lock.lock();
            if (stopping || waits.empty()) continue;
            // At most one read per pause / 5 however many commits are announced: under load
            // a projector commits far more often than a read is worth.
            const auto read_at = std::chrono::steady_clock::now();
            changed.wait_until(lock, read_at + pause / 5, [&] { return stopping; });
            if (stopping) continue;
            auto until = read_at + pause;
            if (auto next = waits.next_deadline(); next && *next < until) until = *next;
            changed.wait_until(lock, until, [&] { return stopping || committed; });
        }
    }
};

ProgressWatch::ProgressWatch(platform::pg::Pool& pool, int partitions, std::size_t capacity,
                             platform::Logger log, std::chrono::milliseconds pause)
    : impl_{std::make_unique<Impl>(pool, partitions, capacity, std::move(log), pause)} {
    if (partitions < 1) throw std::invalid_argument("partitions must be at least 1");
    impl_->thread = std::thread{[this] { impl_->run(); }};
}

ProgressWatch::~ProgressWatch() {
    stop();
}

bool ProgressWatch::park(Reads reads, eventstore::Checkpoint token,
                         std::chrono::steady_clock::time_point deadline, Wake wake, int shard) {
    std::lock_guard lock{impl_->mutex};
    if (impl_->stopping) return false;
    const auto id = impl_->next_id++;
    if (!impl_->waits.park(id, std::move(reads), token, deadline, shard)) return false;
    impl_->wakes.emplace(id, std::move(wake));
    impl_->changed.notify_all();
    return true;
}

std::size_t ProgressWatch::waiting() const {
    std::lock_guard lock{impl_->mutex};
    return impl_->waits.size();
}

std::uint64_t ProgressWatch::polls() const {
    std::lock_guard lock{impl_->mutex};
    return impl_->polls;
}

void ProgressWatch::stop() {
    std::lock_guard stopping{impl_->stop_mutex};
    {
        std::lock_guard lock{impl_->mutex};
        impl_->stopping = true;
        impl_->changed.notify_all();
    }
    if (impl_->thread.joinable()) impl_->thread.join();
    std::vector<std::pair<Wake, Outcome>> due;
    {
        std::lock_guard lock{impl_->mutex};
        due = impl_->take(impl_->waits.drain(), Outcome::stopped);
    }
    impl_->wake_all(due);
}

}  // namespace ordo::query
