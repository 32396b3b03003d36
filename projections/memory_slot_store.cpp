// The projection runtime's seam in memory: slot transactions over copies, leases in a table.

#include "projections/memory_slot_store.hpp"

#include <algorithm>
#include <chrono>
#include <stdexcept>

#include "platform/core/errors.hpp"
#include "platform/core/hops.hpp"
#include "platform/core/partition.hpp"
#include "projections/slot_leases.hpp"

namespace ordo::projections {
namespace {

using eventstore::Checkpoint;
using SlotKey = std::pair<std::string, int>;

constexpr std::size_t kPage = 1000;

// A wait after a probe that found hidden events: HorizonWait's first.
constexpr std::chrono::milliseconds kHiddenWait{5};

bool is_open(DeadLetterStatus status) {
    return status == DeadLetterStatus::parked || status == DeadLetterStatus::retry_requested ||
           status == DeadLetterStatus::skip_requested;
}

bool of_categories(const std::vector<std::string>& categories, const std::string& category) {
    return categories.empty() ||
           std::find(categories.begin(), categories.end(), category) != categories.end();
}

// What a transaction may change, copied at its start to roll back to.
struct State {
    std::map<SlotKey, Checkpoint> checkpoints;
    std::vector<MemoryDeadLetter> letters;
    std::map<SlotKey, SlotStatus> statuses;
    std::int64_t next_letter = 1;
};

class MemorySlotTxn final : public SlotTxn {
   public:
    MemorySlotTxn(State& state, eventstore::EventReader& events, int partitions,
                  std::size_t& letter_looks)
        : state_{state}, events_{events}, partitions_{partitions}, letter_looks_{letter_looks} {}

    pqxx::transaction_base& sql() override {
        throw std::logic_error("this projection writes SQL; the in-memory slot store has none");
    }
    void on_commit(std::function<void()> change) override { changes_.push_back(std::move(change)); }
    std::vector<std::function<void()>> take_changes() { return std::exchange(changes_, {}); }

    Checkpoint lock_checkpoint(const std::string& projection, int partition) override {
        return state_.checkpoints[{projection, partition}];
    }
    void save_checkpoint(const std::string& projection, int partition, Checkpoint next,
                         const std::string&) override {
        state_.checkpoints[{projection, partition}] = next;
    }

    std::vector<eventstore::RecordedEvent> read_partition(
        Checkpoint after, int partition, const std::vector<std::string>& categories,
        std::size_t limit) override {
        std::vector<eventstore::RecordedEvent> out;
        while (out.size() < limit) {
            auto page = events_.read_all(after, kPage);
            for (auto& event : page) {
                after = event.checkpoint();
                if (platform::partition_of(event.stream_id, partitions_) != partition ||
                    !of_categories(categories, event.category)) {
                    continue;
                }
                out.push_back(std::move(event));
                if (out.size() == limit) break;
            }
            if (page.size() < kPage) break;
        }
        return out;
    }

    std::optional<Checkpoint> head(int) override {
        std::optional<Checkpoint> last;
        Checkpoint after{};
        for (;;) {
            auto page = events_.read_all(after, kPage);
            if (!page.empty()) last = after = page.back().checkpoint();
            if (page.size() < kPage) return last;
        }
    }

    std::vector<CheckpointRow> checkpoints(const std::vector<std::string>& projections) override {
        std::vector<CheckpointRow> out;
        for (const auto& [key, at] : state_.checkpoints) {
            if (std::find(projections.begin(), projections.end(), key.first) != projections.end()) {
                out.push_back({key.first, key.second, at, std::nullopt});
            }
        }
        return out;
    }

    Changes changes_after(ShardKey, Checkpoint after, std::size_t limit) override {
        Changes out;
        std::size_t seen = 0;
        while (seen < limit) {
            const auto want = std::min(kPage, limit - seen);
            auto page = events_.read_all(after, want);
            for (const auto& event : page) {
                out.partitions.insert(platform::partition_of(event.stream_id, partitions_));
                out.head = after = event.checkpoint();
            }
            seen += page.size();
            if (page.size() < want) break;
        }
        out.complete = seen < limit;
        return out;
    }

    std::set<std::pair<std::string, int>> requested_letters() override {
        std::set<std::pair<std::string, int>> out;
        for (const auto& letter : state_.letters) {
            if (letter.status == DeadLetterStatus::retry_requested ||
                letter.status == DeadLetterStatus::skip_requested) {
                out.emplace(letter.projection, letter.partition);
            }
        }
        return out;
    }

    std::set<std::pair<std::string, int>> advance(
        ShardKey, Checkpoint head, const std::vector<CheckpointRow>& slots) override {
        std::set<std::pair<std::string, int>> moved;
        for (const auto& slot : slots) {
            auto it = state_.checkpoints.find({slot.projection, slot.partition});
            if (it == state_.checkpoints.end() || it->second != slot.at) continue;
            it->second = head;
            moved.emplace(slot.projection, slot.partition);
        }
        return moved;
    }

    void savepoint(const std::function<void(ReadModelTxn&)>& work) override {
        const State before = state_;
        const auto kept = changes_.size();
        try {
            work(*this);
        } catch (...) {
            state_ = before;
            changes_.resize(kept);
            throw;
        }
    }

    std::int64_t park(const std::string& projection, int partition,
                      const eventstore::RecordedEvent& event, const std::string& error,
                      DeadLetterPolicy policy) override {
        for (auto& letter : state_.letters) {
            if (letter.projection == projection &&
                letter.event.checkpoint() == event.checkpoint()) {
                ++letter.attempts;
                letter.error = error;
                letter.status = DeadLetterStatus::parked;
                return letter.id;
            }
        }
        state_.letters.push_back({.id = state_.next_letter++,
                                  .projection = projection,
                                  .partition = partition,
                                  .event = event,
                                  .error = error,
                                  .policy = policy});
        return state_.letters.back().id;
    }

    std::vector<OpenDeadLetter> lock_open_letters(const std::string& projection,
                                                  int partition) override {
        ++letter_looks_;
        std::vector<OpenDeadLetter> out;
        for (const auto& letter : state_.letters) {
            if (letter.projection == projection && letter.partition == partition &&
                is_open(letter.status)) {
                out.push_back({letter.id, letter.status, letter.policy, letter.event});
            }
        }
        return out;
    }

    void settle(const OpenDeadLetter& open, DeadLetterStatus outcome,
                const std::string& error) override {
        for (auto& letter : state_.letters) {
            if (letter.id != open.id) continue;
            letter.status = outcome;
            if (outcome == DeadLetterStatus::parked) {
                ++letter.attempts;
                letter.error = error;
            }
        }
    }

    std::vector<eventstore::PartitionLag> lag(const std::string& projection,
                                              const std::vector<std::string>& categories,
                                              const std::vector<int>& partitions,
                                              std::int64_t max_count) override {
        std::vector<eventstore::PartitionLag> out;
        const auto now = std::chrono::system_clock::now();
        for (int partition : partitions) {
            auto at = state_.checkpoints.find({projection, partition});
            if (at == state_.checkpoints.end()) continue;
            auto behind = read_partition(at->second, partition, categories,
                                         static_cast<std::size_t>(max_count));
            double oldest = 0;
            if (!behind.empty()) {
                oldest =
                    platform::metrics::seconds_since(behind.front().recorded_at, now).value_or(0.0);
            }
            out.push_back({partition, static_cast<std::int64_t>(behind.size()), oldest});
        }
        return out;
    }

    void record_statuses(const std::vector<SlotStatus>& statuses) override {
        for (const auto& status : statuses) {
            state_.statuses[{status.projection, status.partition}] = status;
        }
    }

   private:
    State& state_;
    eventstore::EventReader& events_;
    int partitions_;
    std::size_t& letter_looks_;
    std::vector<std::function<void()>> changes_;
};

}  // namespace

struct MemorySlotStore::Impl {
    eventstore::EventReader& events;
    int partitions;
    std::mutex mutex;  // held through a transaction: they run one at a time
    State state;
    int failing_commits = 0;
    std::size_t letter_looks = 0;  // counted whether the transaction commits or not
    std::size_t transactions = 0;
};

MemorySlotStore::MemorySlotStore(eventstore::EventReader& events, int partitions)
    : impl_{new Impl{events, partitions, {}, {}, 0, 0, 0}} {}

MemorySlotStore::~MemorySlotStore() = default;

void MemorySlotStore::transact(const std::function<void(SlotTxn&)>& work) {
    auto& d = *impl_;
    std::vector<std::function<void()>> changes;
    {
        std::lock_guard lock{d.mutex};
        ++d.transactions;
        State working = d.state;
        MemorySlotTxn txn{working, d.events, d.partitions, d.letter_looks};
        work(txn);
        changes = txn.take_changes();
        if (d.failing_commits > 0 && !changes.empty()) {
            --d.failing_commits;
            throw platform::Unavailable("the slot store went away at commit");
        }
        d.state = std::move(working);
    }
    for (auto& change : changes) change();
}

platform::FailureKind MemorySlotStore::classify(const std::exception_ptr& error) const {
    try {
        std::rethrow_exception(error);
    } catch (const platform::Unavailable&) {
        return platform::FailureKind::transient;
    } catch (...) {
        return platform::FailureKind::permanent;
    }
}

void MemorySlotStore::fail_commits(int count) {
    std::lock_guard lock{impl_->mutex};
    impl_->failing_commits = count;
}

Checkpoint MemorySlotStore::checkpoint(const std::string& projection, int partition) {
    std::lock_guard lock{impl_->mutex};
    auto it = impl_->state.checkpoints.find({projection, partition});
    return it == impl_->state.checkpoints.end() ? Checkpoint{} : it->second;
}

std::vector<MemoryDeadLetter> MemorySlotStore::dead_letters() {
    std::lock_guard lock{impl_->mutex};
    return impl_->state.letters;
}

std::size_t MemorySlotStore::letter_looks() {
    std::lock_guard lock{impl_->mutex};
    return impl_->letter_looks;
}

std::size_t MemorySlotStore::transactions() {
    std::lock_guard lock{impl_->mutex};
    return impl_->transactions;
}

std::vector<SlotStatus> MemorySlotStore::statuses() {
    std::lock_guard lock{impl_->mutex};
    std::vector<SlotStatus> out;
    for (const auto& [key, status] : impl_->state.statuses) out.push_back(status);
    return out;
}

std::optional<DeadLetterStatus> MemorySlotStore::request(std::int64_t id, DeadLetterRequest what) {
    std::lock_guard lock{impl_->mutex};
    for (auto& letter : impl_->state.letters) {
        if (letter.id != id) continue;
        auto after = after_request(letter.status, what);
        if (after) letter.status = *after;
        return after;
    }
    return std::nullopt;
}

// ---- Leases.

void MemoryLeaseTable::notify() {
    {
        std::lock_guard lock{mutex_};
        ++notifications_;
    }
    changed_.notify_all();
}

MemoryLeases::MemoryLeases(MemoryLeaseTable& table, std::string instance,
                           std::chrono::milliseconds poll_interval, std::function<bool()> hidden)
    : table_{table},
      instance_{std::move(instance)},
      poll_interval_{poll_interval},
      hidden_{std::move(hidden)} {}

MemoryLeases::~MemoryLeases() {
    disconnect();
}

bool MemoryLeases::connected() const {
    return connected_;
}

void MemoryLeases::connect(std::vector<Slot>& slots) {
    for (auto& s : slots) s.owned = false;
    owned_ = 0;
    if (ended_) throw platform::Unavailable("this runtime's lease session has ended");
    std::lock_guard lock{table_.mutex_};
    table_.alive_.insert(instance_);
    connected_ = true;
}

void MemoryLeases::drop_if_broken() {}

void MemoryLeases::disconnect() {
    ended_ = true;
    std::lock_guard lock{table_.mutex_};
    table_.alive_.erase(instance_);
    std::erase_if(table_.holders_, [&](const auto& h) { return h.second == instance_; });
    connected_ = false;
}

void MemoryLeases::balance(std::vector<Slot>& slots) {
    std::lock_guard lock{table_.mutex_};
    if (!connected_) return;  // ended meanwhile: this runtime is not among the live ones
    // A lease lost with the session (disconnect) is not this runtime's any more.
    for (auto& s : slots) {
        auto it = table_.holders_.find({s.projection->name(), s.partition});
        if (s.owned && (it == table_.holders_.end() || it->second != instance_)) s.owned = false;
    }
    std::vector<bool> owned;
    for (const auto& s : slots) owned.push_back(s.owned);
    auto moves = rebalance(owned, fair_share(slots.size(), table_.alive_.size()),
                           search_start(instance_, slots.size()), [&](std::size_t i) {
                               auto& s = slots[i];
                               auto key = std::make_pair(s.projection->name(), s.partition);
                               auto it = table_.holders_.find(key);
                               if (it != table_.holders_.end() && it->second != instance_ &&
                                   table_.alive_.contains(it->second)) {
                                   return false;
                               }
                               table_.holders_[key] = instance_;
                               s.owned = true;
                               s.idle = false;
                               s.settle_pending = true;
                               return true;
                           });
    for (auto i : moves.released) {
        auto& s = slots[i];
        table_.holders_.erase(std::make_pair(s.projection->name(), s.partition));
        s.owned = false;
    }
    owned_ = static_cast<std::size_t>(
        std::count_if(slots.begin(), slots.end(), [](const Slot& s) { return s.owned; }));
}

std::size_t MemoryLeases::owned() const {
    return owned_;
}

bool MemoryLeases::wait_for_events(const std::atomic<bool>& stop,
                                   std::chrono::steady_clock::time_point until) {
    ++waits_;
    std::unique_lock lock{table_.mutex_};
    const auto wait = hiding_ ? std::min(poll_interval_, kHiddenWait) : poll_interval_;
    const auto deadline = std::min(poll_.at_most(std::chrono::steady_clock::now() + wait), until);
    auto now = std::chrono::steady_clock::now();
    // In slices, so that a stop (set without a word to the table) is noticed.
    for (; !stop && !woken && !appended && now < deadline; now = std::chrono::steady_clock::now()) {
        if (table_.notifications_ != seen_notifications_) {
            seen_notifications_ = table_.notifications_;
            appended = true;
            break;
        }
        table_.changed_.wait_for(lock, std::min<std::chrono::steady_clock::duration>(
                                           std::chrono::milliseconds(10), deadline - now));
    }
    return poll_.passed(now);
}

void MemoryLeases::probe_horizon() {
    hiding_ = hidden_ && hidden_();
}

void MemoryLeases::ring() {
    table_.changed_.notify_all();
}

}  // namespace ordo::projections
