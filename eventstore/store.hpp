#pragma once

// The seam between Ordo's runtimes and the event store: readers, writers, and the unit of
// work in which the write side's several steps commit together. Everything that touches the
// store's tables (events, streams, snapshots, command log) goes through these interfaces;
// EventStore (PostgreSQL) and MemoryStore (tests) implement them.

#include <algorithm>
#include <any>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <type_traits>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "eventstore/events.hpp"

namespace ordo::eventstore {

// A stream and the version to read it from: one request of EventReader::read_streams.
struct StreamFrom {
    std::string stream;
    std::int64_t from_version = 1;
};

// Reads committed history. A stream's events come in version order; read_all returns only
// what commits in (transaction id, position) order after `after`, so a later call never finds
// an event that sorts before one already returned.
class EventReader {
   public:
    virtual ~EventReader() = default;
    // Events of `stream` with version >= from_version, at most max_count, in version order.
    virtual std::vector<RecordedEvent> read_stream(const std::string& stream,
                                                   std::int64_t from_version,
                                                   std::size_t max_count) = 0;
    // For each of `streams`, in the order asked, what read_stream(stream, from_version,
    // max_count) returns. On PostgreSQL one round trip for them all, so a reader that looks at
    // many streams at once (the saga view, at every batch) pays one; this default reads them
    // one by one.
    virtual std::vector<std::vector<RecordedEvent>> read_streams(
        const std::vector<StreamFrom>& streams, std::size_t max_count) {
        std::vector<std::vector<RecordedEvent>> out;
        out.reserve(streams.size());
        for (const auto& s : streams)
            out.push_back(read_stream(s.stream, s.from_version, max_count));
        return out;
    }
    // Events committed after `after`, at most max_count, in commit order.
    virtual std::vector<RecordedEvent> read_all(Checkpoint after, std::size_t max_count) = 0;
};

// Appends to one stream at an expected version. Appends to one stream serialize; an append
// is idempotent by event id: re-appending stored events at the same place writes nothing and
// returns their versions and positions (replayed). Throws ConcurrencyConflict (with the
// actual version), EventIdReused, platform::InvalidInput (see check_append).
class EventWriter {
   public:
    virtual ~EventWriter() = default;
    virtual AppendResult append(const std::string& stream, ExpectedVersion expected,
                                const std::vector<NewEvent>& events) = 0;
};

// A stream's saved state: the version it was folded to and the state in the decider's own
// JSON encoding, of one snapshot format.
struct Snapshot {
    std::int64_t version = 0;
    nlohmann::json state;
};

// What loading a stream starts from: its version once locked, its snapshot, and the first
// events after the snapshot (see Session::lock_and_read). A caller that already holds the
// stream's state folded to version `known` asks for the events after it instead: the snapshot
// then comes only when it is newer.
struct StreamHead {
    std::int64_t version = 0;  // the stream's version once locked (or as read); 0: no stream
    std::optional<Snapshot> snapshot;       // of the format asked for, if one is saved past known
    std::optional<Checkpoint> snapshot_at;  // the checkpoint of the snapshot's last event
    // Without a snapshot, the checkpoint and id of the event at `known` (none: no event
    // there). The caller starts from its fold only when that is the event its fold ends with.
    std::optional<Checkpoint> known_at;
    std::string known_id;
    std::vector<RecordedEvent> events;  // after the snapshot, else after known (or from 1)
};

// A stream's state as an earlier command of this process folded it, kept so that the next
// command on the stream reads only the events after `version` (command::FoldCache). `state`
// holds the loader's own type (eventstore::Loaded<Traits>); a fold is immutable once kept,
// and valid for as long as events are: it is a fold of committed, append-only history,
// whose last event is `event_id` (a stream that holds another event at `version` is not the
// history folded, as after a restore from an older backup, and is read without it).
struct KnownFold {
    std::int64_t version = 0;
    std::string event_id;
    std::any state;
};

// The command log: a request's key either is new (claimed by this session until it ends),
// or names a finished request with the same fingerprint (its outcome), or names a different
// request (a refusal, not an error of the store).
struct KeyClaimed {};
struct KeyFinished {
    int status = 0;
    nlohmann::json response;
};
struct KeyTakenByOtherRequest {};
using KeyClaim = std::variant<KeyClaimed, KeyFinished, KeyTakenByOtherRequest>;

// The write side's unit of work: everything done through one Session commits together or
// not at all. A session sees its own writes, except in read_all, which returns committed
// history only (on PostgreSQL the session's appends sit above the horizon until it commits).
// Not thread-safe: one session, one thread; on MemoryStore a session holds the whole store,
// so calling the Store itself from inside transact on the same thread deadlocks, and a
// rolled-back session's transaction id and positions are used again (PostgreSQL never reuses
// them: tests must not depend on either).
class Session : public EventReader, public EventWriter {
   public:
    // Locks `stream` until the session ends (another session's lock_stream or append on it
    // waits) and returns its snapshot of `format`, if one is saved. On PostgreSQL the lock
    // and the read are one round trip. A stream that does not exist yet is not locked: the
    // first commands on a new stream still race, and the append's expected version decides.
    virtual std::optional<Snapshot> lock_stream(const std::string& stream, int format) = 0;
    // Locks `stream` as lock_stream does and reads what loading it starts from: at most
    // `max_count` events after the snapshot (from version 1 without one). They may stop
    // short of `version`, the stream's version once locked: on PostgreSQL the lock and the
    // read are one round trip, and a statement that had to wait for the lock reads as of its
    // start; the caller reads the rest with read_stream. This default makes it of the
    // primitives; a store overrides it to save round trips.
    // `known` (0: none): the version the caller's fold of the stream is at (StreamHead).
    virtual StreamHead lock_and_read(const std::string& stream, int format, std::size_t max_count,
                                     std::int64_t known) {
        StreamHead head;
        head.snapshot = lock_stream(stream, format);
        if (head.snapshot && head.snapshot->version <= known) head.snapshot.reset();
        head.version = stream_version(stream);
        // As on PostgreSQL: the events from the one the caller starts after (for its
        // checkpoint), at most max_count past it.
        const std::int64_t after = head.snapshot ? head.snapshot->version : known;
        head.events = read_stream(stream, std::max<std::int64_t>(after, 1), max_count + 1);
        if (after > 0 && !head.events.empty() && head.events.front().version == after) {
            auto& base = head.events.front();
            if (head.snapshot) {
                head.snapshot_at = base.checkpoint();
            } else {
                head.known_at = base.checkpoint();
                head.known_id = base.event_id;
            }
            head.events.erase(head.events.begin());
        }
        if (head.events.size() > max_count) head.events.resize(max_count);
        return head;
    }
    // Saves a snapshot unless one of a newer version is already saved, or (on PostgreSQL) the
    // stream's partition is fenced on this shard: a snapshot is a shortcut, never owed.
    virtual void save_snapshot(const std::string& stream, const Snapshot& snapshot, int format) = 0;
    // The checkpoint of the stored event at `version` of `stream`, if there is one.
    virtual std::optional<Checkpoint> checkpoint_at(const std::string& stream,
                                                    std::int64_t version) = 0;
    // 0 when the stream does not exist; throws PartitionFenced when it has none here and
    // its partition is fenced here (it moved away: as the reads).
    virtual std::int64_t stream_version(const std::string& stream) = 0;

    // Claims `key` for the request that `fingerprint` identifies, or says how it was taken.
    // A concurrent session claiming the same key waits until this one ends.
    // `stream` is the stream the request runs on, recorded with the key (a move takes the
    // row along with it); a key on a partition this shard fences throws PartitionFenced.
    virtual KeyClaim claim_key(const std::string& key, const std::string& fingerprint,
                               const std::string& stream) = 0;
    // Records the final outcome of the request that claimed `key` in this session.
    virtual void record_outcome(const std::string& key, int status,
                                const nlohmann::json& response) = 0;

    // The fold of `stream` an earlier command of this process left (null: none), and the
    // fold this unit of work leaves for the next one once it has committed. A store's own
    // sessions keep none; command::Executor's keep them in its FoldCache.
    virtual std::shared_ptr<const KnownFold> known_fold(const std::string& /*stream*/) {
        return nullptr;
    }
    virtual void leave_fold(const std::string& /*stream*/, std::shared_ptr<const KnownFold>) {}
};

// Command-log keys older than a cutoff may be expired; the cutoff is microsecond-exact so
// that one cutoff means the same instant to every batch of a run.
using KeyCutoff = std::chrono::sys_time<std::chrono::microseconds>;

// The event store as a whole. Reads and appends called on it directly run on their own
// (an append in a transaction of its own); transact runs a unit of work. Thread-safe.
class Store : public EventReader, public EventWriter {
   public:
    using Deadline = std::chrono::steady_clock::time_point;

    // 0 when the stream does not exist; throws PartitionFenced as Session::stream_version.
    virtual std::int64_t stream_version(const std::string& stream) = 0;

    // What Session::lock_and_read reads, without holding a lock afterwards: the version and
    // the events come from one consistent read (on PostgreSQL one autocommit statement), and
    // a writer may move the stream on at once, which the caller's append at the version read
    // finds out. Waits for a connection until `deadline` as transact does. This default runs
    // lock_and_read in a session of its own.
    virtual StreamHead read_head(const std::string& stream, int format, std::size_t max_count,
                                 std::int64_t known, std::optional<Deadline> deadline) {
        StreamHead head;
        run_session(deadline, [&](Session& session) {
            head = session.lock_and_read(stream, format, max_count, known);
        });
        return head;
    }

    // Runs `work` with a Session and commits; an exception from `work` (or from the commit)
    // rolls everything back and propagates. No retries here: what to retry is the caller's
    // call. Waits for a connection until `deadline`, or the store's own default wait when
    // none is given; throws platform::Overloaded having done nothing when it passes.
    template <class Fn>
    auto transact(std::optional<Deadline> deadline, Fn&& work) {
        using Result = std::invoke_result_t<Fn&, Session&>;
        if constexpr (std::is_void_v<Result>) {
            run_session(deadline, [&](Session& s) { work(s); });
        } else {
            std::optional<Result> result;
            run_session(deadline, [&](Session& s) { result.emplace(work(s)); });
            return std::move(*result);
        }
    }
    template <class Fn>
    auto transact(Fn&& work) {
        return transact(std::nullopt, std::forward<Fn>(work));
    }

    // The instant `age` before the store's now: keys recorded before it may be expired.
    virtual KeyCutoff key_cutoff(std::chrono::hours age) = 0;
    // Deletes at most `batch` command-log keys recorded before `cutoff`, oldest first, in a
    // transaction of its own (skipping keys a running session holds); returns how many.
    virtual std::int64_t expire_keys(KeyCutoff cutoff, std::int64_t batch) = 0;

   protected:
    virtual void run_session(std::optional<Deadline> deadline,
                             const std::function<void(Session&)>& work) = 0;
};

}  // namespace ordo::eventstore
