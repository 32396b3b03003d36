// The Executor: a command as one unit of work, with idempotency-key claims and replays, retries
// on conflict, and the batched expiry of old keys.

#include "command/executor.hpp"

#include <random>
#include <stdexcept>
#include <thread>
#include <utility>

#include "eventstore/event_store.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::command {
namespace {

// The first request claims the key until its session ends; a concurrent repeat waits,
// then finds the finished outcome and replays it.
std::optional<ApiResponse> claim_or_replay(eventstore::Session& session, const Dedup& dedup,
                                           const std::string& stream) {
    auto claim = session.claim_key(dedup.key, dedup.fingerprint, stream);
    if (std::holds_alternative<eventstore::KeyClaimed>(claim)) return std::nullopt;
    if (std::holds_alternative<eventstore::KeyTakenByOtherRequest>(claim)) {
        throw KeyReused("this key was already used for a different request");
    }
    auto& finished = std::get<eventstore::KeyFinished>(claim);
    return ApiResponse{finished.status, std::move(finished.response), true, false};
}

// Over a sharded store, the position a unit answers with ("<xid>.<position>", the consistency
// token) names the shard whose commit order it is in: "<shard>:<xid>.<position>". Before the
// answer is recorded, so that a replay gives the same.
void qualify_position(ApiResponse& reply, std::optional<int> shard) {
    if (!shard || !reply.body.is_object()) return;
    auto it = reply.body.find("position");
    if (it == reply.body.end() || !it->is_string()) return;
    if (auto at = eventstore::Checkpoint::parse_token(it->get<std::string>())) {
        *it = eventstore::ShardToken{*shard, *at}.token();
    }
}

// What both kinds of attempt keep: the folds their unit leaves (Session::leave_fold), kept
// in the executor's cache only once the attempt has committed (keep_folds), so that a fold
// of a rolled-back unit is never started from.
class KeepingSession : public eventstore::Session {
   public:
    explicit KeepingSession(FoldCache& cache) : cache_{cache} {}

    std::shared_ptr<const eventstore::KnownFold> known_fold(const std::string& stream) override {
        return cache_.find(stream);
    }
    void leave_fold(const std::string& stream,
                    std::shared_ptr<const eventstore::KnownFold> fold) override {
        left_.emplace_back(stream, std::move(fold));
    }
    void keep_folds() {
        for (auto& [stream, fold] : left_) cache_.keep(stream, std::move(fold));
        left_.clear();
    }

   private:
    FoldCache& cache_;
    std::vector<std::pair<std::string, std::shared_ptr<const eventstore::KnownFold>>> left_;
};

// The session of a locked attempt: the store's own, in its transaction.
class LockedSession final : public KeepingSession {
   public:
    LockedSession(eventstore::Session& session, FoldCache& cache)
        : KeepingSession{cache}, session_{session} {}

    std::vector<eventstore::RecordedEvent> read_stream(const std::string& stream,
                                                       std::int64_t from_version,
                                                       std::size_t max_count) override {
        return session_.read_stream(stream, from_version, max_count);
    }
    std::vector<std::vector<eventstore::RecordedEvent>> read_streams(
        const std::vector<eventstore::StreamFrom>& streams, std::size_t max_count) override {
        return session_.read_streams(streams, max_count);
    }
    std::vector<eventstore::RecordedEvent> read_all(eventstore::Checkpoint after,
                                                    std::size_t max_count) override {
        return session_.read_all(after, max_count);
    }
    eventstore::AppendResult append(const std::string& stream, eventstore::ExpectedVersion expected,
                                    const std::vector<eventstore::NewEvent>& events) override {
        return session_.append(stream, expected, events);
    }
    std::optional<eventstore::Snapshot> lock_stream(const std::string& stream,
                                                    int format) override {
        return session_.lock_stream(stream, format);
    }
    eventstore::StreamHead lock_and_read(const std::string& stream, int format,
                                         std::size_t max_count, std::int64_t known) override {
        return session_.lock_and_read(stream, format, max_count, known);
    }
    void save_snapshot(const std::string& stream, const eventstore::Snapshot& snapshot,
                       int format) override {
        session_.save_snapshot(stream, snapshot, format);
    }
    std::optional<eventstore::Checkpoint> checkpoint_at(const std::string& stream,
                                                        std::int64_t version) override {
        return session_.checkpoint_at(stream, version);
    }
    std::int64_t stream_version(const std::string& stream) override {
        return session_.stream_version(stream);
    }
    eventstore::KeyClaim claim_key(const std::string& key, const std::string& fingerprint,
                                   const std::string& stream) override {
        return session_.claim_key(key, fingerprint, stream);
    }
    void record_outcome(const std::string& key, int status,
                        const nlohmann::json& response) override {
        session_.record_outcome(key, status, response);
    }

   private:
    eventstore::Session& session_;
};

// The session of an unlocked attempt (Executor::Options::unlocked_first): reads go to the
// store as they are, the one append to the store itself, and a snapshot in a transaction of
// its own after it. No command key: a command with one runs locked.
class UnlockedSession final : public KeepingSession {
   public:
    UnlockedSession(eventstore::Store& store, std::optional<eventstore::Store::Deadline> deadline,
                    FoldCache& cache, const platform::Logger& log)
        : KeepingSession{cache}, store_{store}, deadline_{deadline}, log_{log} {}

    std::vector<eventstore::RecordedEvent> read_stream(const std::string& stream,
                                                       std::int64_t from_version,
                                                       std::size_t max_count) override {
        return store_.read_stream(stream, from_version, max_count);
    }
    std::vector<eventstore::RecordedEvent> read_all(eventstore::Checkpoint after,
                                                    std::size_t max_count) override {
        return store_.read_all(after, max_count);
    }
    eventstore::AppendResult append(const std::string& stream, eventstore::ExpectedVersion expected,
                                    const std::vector<eventstore::NewEvent>& events) override {
        if (std::exchange(appended_, true)) {
            throw std::logic_error("an unlocked command appends once");
        }
        return store_.append(stream, expected, events);
    }
    // Reads the snapshot, locking nothing (the attempt holds no lock to add it to).
    std::optional<eventstore::Snapshot> lock_stream(const std::string& stream,
                                                    int format) override {
        return store_.read_head(stream, format, 0, 0, deadline_).snapshot;
    }
    eventstore::StreamHead lock_and_read(const std::string& stream, int format,
                                         std::size_t max_count, std::int64_t known) override {
        return store_.read_head(stream, format, max_count, known, deadline_);
    }
    void save_snapshot(const std::string& stream, const eventstore::Snapshot& snapshot,
                       int format) override {
        // After the append, which has committed: a snapshot only saves later loads some reads.
        try {
            store_.transact(
                [&](eventstore::Session& s) { s.save_snapshot(stream, snapshot, format); });
        } catch (const std::exception& e) {
            log_.warn("a snapshot could not be saved; the command took effect",
                      {{"stream", stream}, {"version", snapshot.version}, {"error", e.what()}});
        }
    }
    std::optional<eventstore::Checkpoint> checkpoint_at(const std::string& stream,
                                                        std::int64_t version) override {
        return store_.transact(
            [&](eventstore::Session& s) { return s.checkpoint_at(stream, version); });
    }
    std::int64_t stream_version(const std::string& stream) override {
        return store_.stream_version(stream);
    }
    eventstore::KeyClaim claim_key(const std::string&, const std::string&,
                                   const std::string&) override {
        throw std::logic_error("an unlocked command claims no key");
    }
    void record_outcome(const std::string&, int, const nlohmann::json&) override {
        throw std::logic_error("an unlocked command records no outcome");
    }

   private:
    eventstore::Store& store_;
    std::optional<eventstore::Store::Deadline> deadline_;
    const platform::Logger& log_;
    bool appended_ = false;
};

std::unique_ptr<eventstore::Store> pg_store(platform::pg::Pool& pool,
                                            eventstore::AppendNotifier* notifier,
                                            platform::metrics::Registry& metrics,
                                            const eventstore::Upcasters* upcasters) {
    auto store = std::make_unique<eventstore::EventStore>(pool, notifier, std::nullopt, upcasters);
    store->register_metrics(metrics);
    return store;
}

}  // namespace

Executor::Executor(eventstore::Store& store, platform::metrics::Registry& metrics,
                   platform::Logger log, Options options)
    : Executor(nullptr, std::make_unique<eventstore::OneShard>(store), nullptr, metrics,
               std::move(log), options) {}

Executor::Executor(eventstore::Shards& shards, platform::metrics::Registry& metrics,
                   platform::Logger log, Options options)
    : Executor(nullptr, nullptr, &shards, metrics, std::move(log), options) {}

Executor::Executor(platform::pg::Pool& pool, eventstore::AppendNotifier* notifier,
                   platform::metrics::Registry& metrics, platform::Logger log, Options options)
    : Executor(pg_store(pool, notifier, metrics, options.upcasters), nullptr, nullptr, metrics,
               std::move(log), options) {}

Executor::~Executor() = default;

Executor::Executor(std::unique_ptr<eventstore::Store> owned_store,
                   std::unique_ptr<eventstore::Shards> owned_shards, eventstore::Shards* borrowed,
                   platform::metrics::Registry& metrics, platform::Logger log, Options options)
    : owned_store_{std::move(owned_store)},
      owned_shards_{owned_store_ ? std::make_unique<eventstore::OneShard>(*owned_store_)
                                 : std::move(owned_shards)},
      shards_{borrowed ? *borrowed : *owned_shards_},
      log_{std::move(log)},
      options_{options},
      conflicts_{metrics.counter("ordo_command_conflicts_total",
                                 "Commands re-run after a concurrency conflict")},
      replays_{metrics.counter("ordo_command_replays_total",
                               "Commands answered from the command log without running again")},
      appends_{metrics.counter("ordo_command_appends_total",
                               "Commands whose events were committed to the event store")},
      not_started_{metrics.counter(
          "ordo_command_not_started_total",
          "Commands refused before they started: their stream's queue was full, or neither "
          "their turn nor a database connection came within the start timeout")},
      turns_{{.max_waiting_per_key = options.max_waiting_per_stream,
              .max_waiting = options.max_waiting}},
      folds_{options.kept_folds} {
    metrics.gauge_callback("ordo_command_waiting", "Commands waiting for their stream's turn", {},
                           [this] { return static_cast<double>(turns_.waiting()); });
    metrics.gauge_callback("ordo_command_kept_folds",
                           "Streams whose state the command side keeps folded in memory", {},
                           [this] { return static_cast<double>(folds_.size()); });
}

ApiResponse Executor::run(const std::string& stream, const std::optional<Dedup>& dedup,
                          const std::function<ApiResponse(eventstore::Session&)>& unit) {
    thread_local std::mt19937 rng{std::random_device{}()};
    const auto deadline = std::chrono::steady_clock::now() + options_.start_timeout;
    std::optional<platform::KeyedTurns::Turn> turn;
    try {
        turn.emplace(turns_.take(stream, deadline));
    } catch (const platform::Overloaded&) {
        not_started_.inc();
        throw;
    }
    // Until the first conflict, when there is no key to claim.
    bool unlocked = options_.unlocked_first && !dedup;
    for (int attempt = 1;; ++attempt) {
        // The store first, then its id: a newer map read between the two names the new shard
        // for a command bound to the old one, which refuses it (it is fenced before any map
        // gives its partition away), so no answer carries another shard's name.
        auto& store = shards_.of(stream);
        const auto shard = shards_.shard_id(stream);
        try {
            // Later attempts have started already: they wait for a connection as long as
            // the store allows, not only what is left of the start timeout.
            auto by = attempt == 1 ? std::optional{deadline} : std::nullopt;
            if (unlocked) {
                UnlockedSession session{store, by, folds_, log_};
                auto reply = unit(session);
                session.keep_folds();  // its append, if any, has committed
                qualify_position(reply, shard);
                if (reply.appended) appends_.inc();
                return reply;
            }
            // The store may run the unit again in its transaction (a group-committed unit
            // re-run alone): each run's session replaces the one before, with its folds.
            std::optional<LockedSession> locked;
            auto reply = store.transact(by, [&](eventstore::Session& inner) -> ApiResponse {
                auto& session = locked.emplace(inner, folds_);
                if (dedup) {
                    if (auto stored = claim_or_replay(session, *dedup, stream)) return *stored;
                }
                auto reply = unit(session);
                qualify_position(reply, shard);
                if (dedup) {
                    if (reply.status >= 500) throw std::logic_error("a 5xx outcome is not final");
                    session.record_outcome(dedup->key, reply.status, reply.body);
                }
                return reply;
            });
            locked->keep_folds();  // committed (its store session has ended: folds only)
            if (reply.replayed) replays_.inc();
            if (reply.appended) appends_.inc();
            return reply;
        } catch (const eventstore::ConcurrencyConflict&) {
            conflicts_.inc();
            // At once, now queueing on the lock: an unlocked miss always gets its locked
            // attempt, whatever max_attempts allows.
            if (std::exchange(unlocked, false)) continue;
            if (attempt >= options_.max_attempts) throw;
        } catch (const eventstore::PartitionFenced&) {
            // The stream's shard no longer takes it: a partition moved, or is being moved.
            // With a newer map the command runs at once on the new shard; without one the
            // partition is paused, and the caller hears 503 with Retry-After.
            if (attempt >= options_.max_attempts) throw;
            shards_.refresh();
            if (shards_.shard_id(stream) == shard) throw;
            continue;
        } catch (const platform::Overloaded&) {
            not_started_.inc();  // this attempt and any before it left nothing behind
            throw;
        }
        auto cap = options_.base_backoff * (1 << std::min(attempt, 6));
        std::uniform_int_distribution<long> jitter{0, cap.count()};
        std::this_thread::sleep_for(std::chrono::milliseconds(jitter(rng)));
    }
}

Executor::Expired Executor::expire(std::chrono::hours age, std::int64_t batch, int max_batches) {
    if (batch < 1 || max_batches < 1) {
        throw std::invalid_argument("expire needs a batch and max_batches of at least 1");
    }
    Expired expired;
    std::exception_ptr failed;
    for (auto* store : shards_.all()) {
        // Each shard on its own budget, and one that fails (down) keeps no other from its
        // turn: its error is thrown once every shard has had one.
        try {
            // One cutoff for the whole run on a shard: keys recorded meanwhile are not its
            // business.
            const auto cutoff = store->key_cutoff(age);
            for (int batches = 0; batches < max_batches; ++batches) {
                auto deleted = store->expire_keys(cutoff, batch);
                ++expired.batches;
                expired.records += deleted;
                if (deleted < batch) break;
            }
        } catch (...) {
            if (!failed) failed = std::current_exception();
        }
    }
    if (failed) std::rethrow_exception(failed);
    return expired;
}

}  // namespace ordo::command
