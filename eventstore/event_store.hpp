#pragma once

// The PostgreSQL event store: its sessions, EventStore itself, and HorizonWait for readers.

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/row>
#include <pqxx/transaction_base>

#include "eventstore/events.hpp"
#include "eventstore/group_commit.hpp"
#include "eventstore/store.hpp"
#include "eventstore/upcasting.hpp"

namespace ordo::platform::pg {
class Pool;
}
namespace ordo::platform::metrics {
class Histogram;
class Registry;
}  // namespace ordo::platform::metrics

namespace ordo::eventstore {

class AppendNotifier;

// A Session on a PostgreSQL transaction: the caller's own (the projection runtime and the
// saga intake append inside transactions that also carry their checkpoints), or one that
// EventStore::transact opened. The transaction must be on a connection prepared with
// EventStore::prepare; committing it is the owner's business, and so is signalling an
// AppendNotifier after the commit when appended() says events were written. Its reads
// return events in the current shape of `upcasters` (see upcasting.hpp), or in the stored
// shape when it is null; `upcasters` outlives the session.
class PgSession final : public Session {
   public:
    explicit PgSession(pqxx::transaction_base& txn, const Upcasters* upcasters = nullptr)
        : txn_{txn}, upcasters_{upcasters} {}

    std::vector<RecordedEvent> read_stream(const std::string& stream, std::int64_t from_version,
                                           std::size_t max_count) override;
    std::vector<std::vector<RecordedEvent>> read_streams(const std::vector<StreamFrom>& streams,
                                                         std::size_t max_count) override;
    std::vector<RecordedEvent> read_all(Checkpoint after, std::size_t max_count) override;
    AppendResult append(const std::string& stream, ExpectedVersion expected,
                        const std::vector<NewEvent>& events) override;
    std::optional<Snapshot> lock_stream(const std::string& stream, int format) override;
    StreamHead lock_and_read(const std::string& stream, int format, std::size_t max_count,
                             std::int64_t known) override;
    // What lock_and_read reads, as of the statement, locking nothing (Store::read_head).
    StreamHead read_head(const std::string& stream, int format, std::size_t max_count,
                         std::int64_t known);
    void save_snapshot(const std::string& stream, const Snapshot& snapshot, int format) override;
    std::optional<Checkpoint> checkpoint_at(const std::string& stream,
                                            std::int64_t version) override;
    std::int64_t stream_version(const std::string& stream) override;
    KeyClaim claim_key(const std::string& key, const std::string& fingerprint,
                       const std::string& stream) override;
    void record_outcome(const std::string& key, int status,
                        const nlohmann::json& response) override;

    // Whether an append of this session wrote events (not only replayed stored ones).
    bool appended() const { return appended_; }

   private:
    // Throws PartitionFenced when this shard fences `stream`'s partition.
    void refuse_if_fenced(const std::string& stream);
    // lock_and_read and read_head: `statement` is ordo_lock_and_read or ordo_read_head.
    StreamHead head(const char* statement, const std::string& stream, int format,
                    std::size_t max_count, std::int64_t known);

    pqxx::transaction_base& txn_;
    const Upcasters* upcasters_;
    bool appended_ = false;
};

// The PostgreSQL event store. Appends to one stream serialize on that stream's row; appends
// to different streams run in parallel. Every append is durable and idempotent by event
// id. Thread-safe: all state lives in the database and the pool.
class EventStore final : public Store {
   public:
    // `notifier` (optional) is signalled after each append this class commits (alone or in
    // a session of transact); callers that append in their own transaction (PgSession)
    // signal it themselves after their commit.
    //
    // Sessions of transact are group-committed (see GroupCommit): concurrent ones share a
    // transaction, each inside a savepoint of its own, so one that fails rolls back alone.
    // A session alone runs in a transaction of its own, as if there were no grouping; so
    // does one that waited for a lock in a shared batch longer than a moment (it is run
    // again alone), so one stream held up elsewhere holds up no other. Left unset, batches
    // may use every connection of the pool, as single sessions could: grouping starts where
    // they would have queued for one.
    //
    // Appends made on the store itself (append(), not a session's) are group-committed apart
    // from the sessions, with at most kAppendBatchesInFlight batches at a time (or fewer, as
    // `grouping` says): a batch of them is one statement in autocommit (ordo.append_batch;
    // alone, ordo.append_events with p_wait false), so concurrent writers share a commit and
    // a round trip. Such a statement waits for no lock (50 ms at most), so a batch slot is never
    // held by a stream held elsewhere: an append whose stream another transaction holds, or whose
    // statement failed as a whole, runs again alone on the caller's thread, outside the slots, as a
    // single ordo.append_events that may wait for the lock.
    //
    // Reads through the Store seam (read_stream, read_all, and those of its sessions) return
    // events upcast by `upcasters` to their current shape; null reads the stored shape. The
    // static reads below (read_partition, read_range, event_from_row) always return the
    // stored shape: they feed the relay, which publishes what is stored, and the projection
    // runtime and rebuild, which upcast at the projection (projections/upcasting.hpp).
    // `upcasters` outlives the store.
    explicit EventStore(platform::pg::Pool& pool, AppendNotifier* notifier = nullptr,
                        std::optional<GroupCommit::Options> grouping = std::nullopt,
                        const Upcasters* upcasters = nullptr);

    // Registers this class's prepared statements; add it to the pool's preparers.
    static void prepare(pqxx::connection& conn);
    // Only those of head(), read_range() and read_selected(), for a pool that reads history
    // and nothing else of the store (the query service's events API).
    static void prepare_reader(pqxx::connection& conn);

    // Appends as a unit of group commit: alone, in autocommit (one statement, no BEGIN and
    // COMMIT round trips); under load, in a batch shared with other appends and sessions.
    // Throws ConcurrencyConflict, EventIdReused, platform::InvalidInput (empty batch, bad
    // ids), platform::Overloaded (no transaction came free in the pool's wait) or
    // platform::Unavailable: platform::OutcomeUnknown when the connection broke while the
    // statement ran, which may have committed it (the same append again then replays).
    AppendResult append(const std::string& stream, ExpectedVersion expected,
                        const std::vector<NewEvent>& events) override;

    // Appends inside the caller's transaction; PgSession{txn}.append.
    static AppendResult append(pqxx::transaction_base& txn, const std::string& stream,
                               ExpectedVersion expected, const std::vector<NewEvent>& events);

    // Events of one stream with version >= from_version, in version order.
    std::vector<RecordedEvent> read_stream(const std::string& stream, std::int64_t from_version,
                                           std::size_t max_count) override;
    // In the stored shape, inside the caller's transaction.
    static std::vector<RecordedEvent> read_stream(pqxx::transaction_base& txn,
                                                  const std::string& stream,
                                                  std::int64_t from_version, std::size_t max_count);

    // Many streams' events in one statement (EventReader::read_streams).
    std::vector<std::vector<RecordedEvent>> read_streams(const std::vector<StreamFrom>& streams,
                                                         std::size_t max_count) override;

    // Events committed after `after` in (transaction id, position) order, only below the
    // horizon of transactions still running, so a later call never finds an event that
    // sorts before one already returned.
    std::vector<RecordedEvent> read_all(Checkpoint after, std::size_t max_count) override;

    // Like read_all, inside the caller's transaction, only for the streams of one partition
    // (stream_hash mod partitions) and, when `categories` is not empty, of those categories.
    static std::vector<RecordedEvent> read_partition(pqxx::transaction_base& txn, Checkpoint after,
                                                     int partitions, int partition,
                                                     const std::vector<std::string>& categories,
                                                     std::size_t max_count);

    // The events after `after` up to and including `until`, in commit order, of `categories`
    // and `types` (all when empty). Bounded above by a fixed checkpoint instead of the live
    // horizon, so every call is an index range scan whatever the table's statistics say (the
    // rebuild's replay and the events API read this way, `until` being a head() taken
    // before). A read that returns less than `max_count` has seen everything up to `until`.
    static std::vector<RecordedEvent> read_range(pqxx::transaction_base& txn, Checkpoint after,
                                                 Checkpoint until,
                                                 const std::vector<std::string>& categories,
                                                 std::size_t max_count,
                                                 const std::vector<std::string>& types = {});
    // What read_selected returns: the events, and where the next read starts: the last event
    // when `max_count` came, else the end of what was looked at (everything selected up to
    // there was returned).
    struct Selected {
        std::vector<RecordedEvent> events;
        Checkpoint read_to;
    };
    // read_range of `categories` and `types` that looks at no more than `max_scan` events in
    // commit order: the filters have no index of their own, so a rare type costs a bounded
    // scan per call rather than a scan of all history, and the caller goes on from read_to.
    static Selected read_selected(pqxx::transaction_base& txn, Checkpoint after, Checkpoint until,
                                  const std::vector<std::string>& categories,
                                  const std::vector<std::string>& types, std::size_t max_count,
                                  std::size_t max_scan);
    // How many events of `categories` (all when empty) are at or before `until`.
    static std::int64_t count_until(pqxx::transaction_base& txn, Checkpoint until,
                                    const std::vector<std::string>& categories);

    // The newest event below the horizon, if any. Read before read_partition in the same
    // transaction: a partition read that returns less than asked has then seen every
    // event of its partition up to this head.
    static std::optional<Checkpoint> head(pqxx::transaction_base& txn);
    // Which of `partitions` partitions have events after `after` below the horizon, and the
    // newest of them, in one statement that looks at `limit` events at most: what a reader
    // of many partitions needs to know to pass over those with nothing new.
    static ChangedPartitions changes_after(pqxx::transaction_base& txn, Checkpoint after,
                                           int partitions, std::size_t limit);

    // How long committed events have been hidden by the horizon: seconds since the first of
    // them in commit order was recorded (its transaction's start), nullopt when none is. They are
    // hidden while a transaction that began before they committed runs somewhere in the cluster;
    // readers below the horizon see them as soon as it ends, so they look again soon (see
    // HorizonWait) instead of waiting for the next NOTIFY, which may be long in coming. The age is
    // what such a transaction adds to every reader's latency (the relay exports it).
    static std::optional<double> hidden_for(pqxx::transaction_base& txn);

    // What a reader at `after` has left to read, asked after a read that found nothing:
    // events it can read now (they committed, or the horizon passed them, since it read), or
    // only events the horizon hides (the first one's age, as hidden_for), or nothing. Asked
    // after the read, hidden_for alone leaves a gap: a horizon that passed between the two
    // (an older transaction ended, which notifies no one) shows nothing hidden, and the
    // events the read missed would wait for the poll.
    struct Unread {
        bool readable = false;
        std::optional<double> hidden_for;
    };
    static Unread unread_after(pqxx::transaction_base& txn, Checkpoint after);

    // 0 when the stream does not exist.
    std::int64_t stream_version(const std::string& stream) override;
    // One autocommit statement (PgSession::read_head).
    StreamHead read_head(const std::string& stream, int format, std::size_t max_count,
                         std::int64_t known, std::optional<Deadline> deadline) override;

    // The columns of a recorded event under the names ordo.events gives them, in the order
    // event_from_row reads them: every statement here selects them, and so does whatever
    // reads a table that keeps events under the same names (ordo.dead_letters).
    static const std::string& event_columns();
    // The event in `row`, whose event_columns() begin at column `first`.
    static RecordedEvent event_from_row(const pqxx::row& row, pqxx::row::size_type first = 0);

    // The cutoff comes from the database's clock, the one that stamps the keys.
    KeyCutoff key_cutoff(std::chrono::hours age) override;
    std::int64_t expire_keys(KeyCutoff cutoff, std::int64_t batch) override;

    // At most this many batches of appends run at once: few, so that concurrent appends
    // coalesce (sixteen writers make batches of about eight), and more than one, so that a
    // batch is sent while another commits.
    static constexpr std::size_t kAppendBatchesInFlight = 2;

    // The queues of group commit, of sessions and of appends: their batches so far and what
    // waits now.
    const GroupCommit& grouping() const { return group_; }
    const GroupCommit& append_grouping() const { return appends_; }
    // Exports the batch sizes (ordo_store_batch_units, and of appends
    // ordo_store_append_batch_appends) and the queues (ordo_store_queued,
    // ordo_store_appends_queued), with `labels` (a sharded store's shard="<id>").
    void register_metrics(platform::metrics::Registry& registry,
                          const std::map<std::string, std::string>& labels = {});

   protected:
    void run_session(std::optional<Deadline> deadline,
                     const std::function<void(Session&)>& work) override;

   private:
    void run_batch(std::vector<GroupCommit::Unit*>& batch, GroupCommit::Deadline by);
    // The batch's one transaction; true when a unit appended and it committed.
    bool run_batch_transaction(std::vector<GroupCommit::Unit*>& batch, GroupCommit::Deadline by);
    void wake_in_doubt();
    void run_appends(std::vector<GroupCommit::Unit*>& batch, GroupCommit::Deadline by);

    platform::pg::Pool& pool_;
    AppendNotifier* notifier_;
    const Upcasters* upcasters_;
    std::atomic<platform::metrics::Histogram*> batch_units_{nullptr};
    std::atomic<platform::metrics::Histogram*> append_units_{nullptr};
    GroupCommit group_;
    GroupCommit appends_;
};

// How long a reader that found nothing new waits for appends: its poll interval, or, while
// events are hidden by the horizon, 5 ms doubling up to it, and to a second at most: the
// hidden events' notification came already, so nothing else would wake the reader for them,
// however long the poll.
class HorizonWait {
   public:
    explicit HorizonWait(std::chrono::milliseconds poll) : poll_{poll} {}
    std::chrono::milliseconds next(bool hidden) {
        if (!hidden) {
            soon_ = kFirst;
            return poll_;
        }
        const auto wait = std::min({soon_, poll_, kLongest});
        soon_ = std::min({soon_ * 2, poll_, kLongest});
        return wait;
    }

   private:
    static constexpr std::chrono::milliseconds kFirst{5};
    static constexpr std::chrono::milliseconds kLongest{1000};
    std::chrono::milliseconds poll_;
    std::chrono::milliseconds soon_ = kFirst;
};

}  // namespace ordo::eventstore
