// The PostgreSQL event store: its statements, its sessions, its unit of work.
#include "eventstore/event_store.hpp"

#include <algorithm>
#include <set>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/utc_time.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::eventstore {
namespace {

std::string encode_batch(const std::vector<NewEvent>& events) {
    auto batch = nlohmann::json::array();
    for (const auto& e : events) {
        batch.push_back({{"event_id", e.event_id},
                         {"type", e.type},
                         {"schema_version", e.schema_version},
                         {"payload", e.payload},
                         {"metadata", e.metadata.to_json()}});
    }
    return batch.dump();
}

// A text[] literal of names (categories, event types: [A-Za-z0-9._-], no quote or backslash
// to escape). Each is quoted, so that a name such as NULL stays a name.
std::string text_array(const std::vector<std::string>& names) {
    std::string out = "{";
    for (std::size_t i = 0; i < names.size(); ++i) out += (i ? ",\"" : "\"") + names[i] + "\"";
    return out + "}";
}

std::vector<RecordedEvent> events_of(const pqxx::result& rows) {
    std::vector<RecordedEvent> out;
    out.reserve(rows.size());
    for (const auto& row : rows) out.push_back(EventStore::event_from_row(row));
    return out;
}

// The SQLSTATE of a write to a partition its shard fences (migration 0017).
constexpr std::string_view kPartitionFenced = "ORD01";

// True when this shard fences the partition of the stream whose hash is the parameter `hash`
// ($n). Every fence names the one partition count.
std::string fenced_sql(const char* hash) {
    return std::string{"EXISTS (SELECT 1 FROM ordo.partition_fences f WHERE f.partition = ("} +
           hash +
           "::bigint % (SELECT g.partitions FROM ordo.partition_fences g ORDER BY g.partition "
           "LIMIT 1))::integer)";
}

std::int64_t hash_of(const std::string& stream) {
    return static_cast<std::int64_t>(platform::stream_hash(stream));
}

PartitionFenced fenced(const std::string& stream) {
    return PartitionFenced("the partition of " + stream + " is fenced on this shard");
}

// The outcome of one append from its rows of ordo.append_events, [begin, end), whose
// columns start at `column` (ordo.append_batch puts the item's place first): what the append
// returns, or what a refused one throws.
AppendResult append_outcome(const std::string& stream, ExpectedVersion expected,
                            const pqxx::result& rows, pqxx::result::size_type begin,
                            pqxx::result::size_type end, pqxx::row::size_type column = 0) {
    const auto first = rows.at(begin);
    const auto outcome = first[column].as<std::string>();
    if (outcome == "conflict") {
        throw ConcurrencyConflict(stream, expected, first[column + 1].as<std::int64_t>());
    }
    if (outcome == "reused") throw EventIdReused(first[column + 5].as<std::string>());
    if (outcome == "fenced") throw fenced(stream);

    AppendResult result{};
    result.replayed = outcome == "replayed";
    for (auto i = begin; i < end; ++i) {
        const auto row = rows[i];
        result.positions.push_back(row[column + 3].as<std::int64_t>());
        result.checkpoint = {transaction_id_from_xid8(row[column + 4].as<std::string>()),
                             row[column + 3].as<std::int64_t>()};
    }
    result.first_version = first[column + 2].as<std::int64_t>();
    result.last_version = rows[end - 1][column + 2].as<std::int64_t>();
    return result;
}

// The statement of ordo.append_events and its outcome; the caller validated the batch.
AppendResult append_in(pqxx::transaction_base& txn, const std::string& stream,
                       ExpectedVersion expected, const std::vector<NewEvent>& events) {
    pqxx::result rows;
    try {
        rows = txn.exec_prepared("ordo_append", stream, expected.encoded(), encode_batch(events));
    } catch (const pqxx::unique_violation& e) {
        // Only a concurrent append of the same event ids to another stream gets here;
        // the stream lock turns every same-stream race into a replay or a conflict.
        if (std::string_view{e.what()}.find("events_event_id_key") != std::string_view::npos) {
            throw EventIdReused(events.front().event_id);
        }
        throw;
    } catch (const pqxx::sql_error& e) {
        if (e.sqlstate() == kPartitionFenced) throw PartitionFenced(e.what());
        throw;
    }
    return append_outcome(stream, expected, rows, 0, rows.size());
}

// A stream this shard has no row of reads as new (0), unless its partition is fenced here:
// then a service with an old map asks for a stream that moved away (or is moving), and is
// told so (PartitionFenced), as the reads tell it. One statement: the fence is looked at only
// when the stream has no row.
std::int64_t stream_version_in(pqxx::transaction_base& txn, const std::string& stream) {
    const auto version =
        txn.exec_prepared1("ordo_stream_version", stream, hash_of(stream))[0].as<std::int64_t>();
    if (version < 0) throw fenced(stream);
    return version;
}

// The fingerprint is stored as its SHA-256: fixed size whatever the request.
constexpr const char* kFingerprint = "encode(sha256(convert_to($2, 'UTF8')), 'hex')";

}  // namespace

const std::string& EventStore::event_columns() {
    static const std::string columns =
        "global_position, transaction_id::text AS txid, stream_id, category, stream_version, "
        "event_id::text, event_type, schema_version, payload::text, metadata::text, " +
        platform::sql_utc("recorded_at");
    return columns;
}

RecordedEvent EventStore::event_from_row(const pqxx::row& row, pqxx::row::size_type first) {
    return RecordedEvent{
        row[first].as<std::int64_t>(),
        transaction_id_from_xid8(row[first + 1].as<std::string>()),
        row[first + 2].as<std::string>(),
        row[first + 3].as<std::string>(),
        row[first + 4].as<std::int64_t>(),
        row[first + 5].as<std::string>(),
        row[first + 6].as<std::string>(),
        row[first + 7].as<int>(),
        nlohmann::json::parse(row[first + 8].as<std::string>()),
        Metadata::from_json(nlohmann::json::parse(row[first + 9].as<std::string>())),
        row[first + 10].as<std::string>(),
    };
}

void EventStore::prepare_reader(pqxx::connection& conn) {
    conn.prepare("ordo_read_range",
                 "SELECT " + event_columns() +
                     " FROM ordo.events"
                     " WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)"
                     "   AND (transaction_id, global_position) <= ($3::text::xid8, $4::bigint)"
                     "   AND (cardinality($5::text[]) = 0 OR category = ANY($5::text[]))"
                     "   AND (cardinality($7::text[]) = 0 OR event_type = ANY($7::text[]))"
                     " ORDER BY transaction_id, global_position LIMIT $6");
    conn.prepare("ordo_scan_bound",
                 "SELECT transaction_id::text AS txid, global_position FROM ordo.events"
                 " WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)"
                 "   AND (transaction_id, global_position) <= ($3::text::xid8, $4::bigint)"
                 " ORDER BY transaction_id, global_position OFFSET $5 LIMIT 1");
    conn.prepare("ordo_head",
                 "SELECT transaction_id::text AS txid, global_position FROM ordo.events"
                 " WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
                 " ORDER BY transaction_id DESC, global_position DESC LIMIT 1");
}

void EventStore::prepare(pqxx::connection& conn) {
    conn.prepare("ordo_append", "SELECT * FROM ordo.append_events($1, $2, $3::jsonb)");
    conn.prepare("ordo_append_batch", "SELECT * FROM ordo.append_batch($1::jsonb)");
    conn.prepare("ordo_append_nowait",
                 "SELECT * FROM ordo.append_events($1, $2, $3::jsonb, false)");
    conn.prepare("ordo_read_stream",
                 "SELECT " + event_columns() +
                     " FROM ordo.events WHERE stream_id = $1 AND stream_version >= $2"
                     " ORDER BY stream_version LIMIT $3");
    // Every stream asked for in one statement: a row per event, in the order asked and each
    // stream's in version order, and a row of nulls for a stream with none, which says
    // whether its partition is fenced here when it was read from its start.
    conn.prepare("ordo_read_streams",
                 "SELECT w.n, CASE WHEN e.global_position IS NULL AND w.from_version <= 1 "
                 "THEN " +
                     fenced_sql("w.hash") +
                     " END, e.* FROM jsonb_to_recordset($1::jsonb) AS w(n bigint, stream_id text,"
                     " from_version bigint, hash bigint)"
                     " LEFT JOIN LATERAL (SELECT " +
                     event_columns() +
                     " FROM ordo.events WHERE stream_id = w.stream_id"
                     " AND stream_version >= w.from_version ORDER BY stream_version LIMIT $2)"
                     " AS e ON true ORDER BY w.n, e.stream_version");
    conn.prepare("ordo_read_all",
                 "SELECT " + event_columns() +
                     ", moved_from IS NOT NULL"
                     " FROM ordo.events"
                     " WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)"
                     "   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
                     " ORDER BY transaction_id, global_position LIMIT $3");
    conn.prepare("ordo_read_partition",
                 "SELECT " + event_columns() +
                     " FROM ordo.events"
                     " WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)"
                     "   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
                     "   AND stream_hash % $3 = $4"
                     "   AND (cardinality($5::text[]) = 0 OR category = ANY($5::text[]))"
                     " ORDER BY transaction_id, global_position LIMIT $6");
    prepare_reader(conn);
    // A stream's head, with its row locked (lock_and_read) or as of the statement (read_head).
    // $5: the version of the caller's fold (0: none); a snapshot not past it is not read, and
    // the events start at it (its own event, for its checkpoint) or at the snapshot's.
    const auto head_sql = [](const char* lock) {
        return "WITH locked AS (SELECT version FROM ordo.streams WHERE stream_id = $1" +
               std::string{lock} +
               "), "
               "snap AS (SELECT stream_version, state FROM ordo.snapshots "
               "WHERE stream_id = $1 AND schema_version = $2 AND stream_version > $5) "
               "SELECT (SELECT version FROM locked), s.stream_version, "
               "CASE WHEN e.stream_version IS NULL OR e.stream_version = s.stream_version "
               "THEN s.state::text END, e.*, " +
               fenced_sql("$4") +
               " "
               "FROM (SELECT 1) AS one LEFT JOIN snap AS s ON true "
               "LEFT JOIN LATERAL (SELECT " +
               event_columns() +
               " FROM ordo.events WHERE stream_id = $1 AND stream_version >= "
               "coalesce(s.stream_version, greatest($5, 1)) ORDER BY stream_version LIMIT $3) "
               "AS e ON true";
    };
    conn.prepare("ordo_lock_and_read", head_sql(" FOR UPDATE"));
    conn.prepare("ordo_read_head", head_sql(""));
    conn.prepare("ordo_stream_version",
                 "SELECT coalesce((SELECT version FROM ordo.streams WHERE stream_id = $1), "
                 "CASE WHEN " +
                     fenced_sql("$2") + " THEN -1 ELSE 0 END)");
}

std::vector<RecordedEvent> PgSession::read_stream(const std::string& stream,
                                                  std::int64_t from_version,
                                                  std::size_t max_count) {
    auto events = events_of(txn_.exec_prepared("ordo_read_stream", stream, from_version,
                                               static_cast<std::int64_t>(max_count)));
    if (events.empty() && from_version <= 1) refuse_if_fenced(stream);
    return upcast_all(upcasters_, std::move(events));
}

std::vector<std::vector<RecordedEvent>> PgSession::read_streams(
    const std::vector<StreamFrom>& streams, std::size_t max_count) {
    std::vector<std::vector<RecordedEvent>> out(streams.size());
    if (streams.empty()) return out;
    auto asked = nlohmann::json::array();
    for (std::size_t i = 0; i < streams.size(); ++i) {
        asked.push_back({{"n", i},
                         {"stream_id", streams[i].stream},
                         {"from_version", streams[i].from_version},
                         {"hash", hash_of(streams[i].stream)}});
    }
    const auto rows =
        txn_.exec_prepared("ordo_read_streams", asked.dump(), static_cast<std::int64_t>(max_count));
    for (const auto& row : rows) {
        const auto i = row[0].as<std::size_t>();
        if (!row[2].is_null()) {
            out.at(i).push_back(EventStore::event_from_row(row, 2));
        } else if (!row[1].is_null() && row[1].as<bool>()) {
            throw fenced(streams[i].stream);  // as read_stream: nothing here, and fenced
        }
    }
    for (auto& events : out) events = upcast_all(upcasters_, std::move(events));
    return out;
}

void PgSession::refuse_if_fenced(const std::string& stream) {
    // Only for a stream this shard has nothing of: one that a service with an old map looks
    // for here after its partition moved away (or while it moves) would read as new.
    if (txn_.exec_params1("SELECT " + fenced_sql("$1"), hash_of(stream))[0].as<bool>()) {
        throw fenced(stream);
    }
}

std::vector<RecordedEvent> PgSession::read_all(Checkpoint after, std::size_t max_count) {
    const auto rows = txn_.exec_prepared("ordo_read_all", std::to_string(after.transaction_id),
                                         after.position, static_cast<std::int64_t>(max_count));
    auto events = events_of(rows);
    for (std::size_t i = 0; i < events.size(); ++i) {
        events[i].moved = rows[static_cast<pqxx::result::size_type>(i)][11].as<bool>();
    }
    return upcast_all(upcasters_, std::move(events));
}

AppendResult PgSession::append(const std::string& stream, ExpectedVersion expected,
                               const std::vector<NewEvent>& events) {
    check_append(stream, events);
    auto result = append_in(txn_, stream, expected, events);
    appended_ = appended_ || !result.replayed;
    return result;
}

std::optional<Snapshot> PgSession::lock_stream(const std::string& stream, int format) {
    // One round trip: lock the stream's row (so commands on one hot stream queue instead of
    // deciding on stale state and burning retries) and read its snapshot.
    auto row = txn_.exec_params1(
        "WITH locked AS (SELECT 1 FROM ordo.streams WHERE stream_id = $1 FOR UPDATE) "
        "SELECT s.stream_version, s.state::text, (SELECT count(*) FROM locked), " +
            fenced_sql("$3") +
            " FROM (SELECT 1) AS one LEFT JOIN ordo.snapshots AS s "
            "ON s.stream_id = $1 AND s.schema_version = $2",
        stream, format, hash_of(stream));
    if (row[2].as<std::int64_t>() == 0 && row[3].as<bool>()) {
        throw fenced(stream);
    }
    if (row[0].is_null()) return std::nullopt;
    return Snapshot{row[0].as<std::int64_t>(), nlohmann::json::parse(row[1].c_str())};
}

StreamHead PgSession::lock_and_read(const std::string& stream, int format, std::size_t max_count,
                                    std::int64_t known) {
    return head("ordo_lock_and_read", stream, format, max_count, known);
}

StreamHead PgSession::read_head(const std::string& stream, int format, std::size_t max_count,
                                std::int64_t known) {
    return head("ordo_read_head", stream, format, max_count, known);
}

StreamHead PgSession::head(const char* statement, const std::string& stream, int format,
                           std::size_t max_count, std::int64_t known) {
    known = std::max<std::int64_t>(known, 0);
    // One round trip: the lock (ordo_lock_and_read), the snapshot, and the events from the
    // snapshot's own (for its checkpoint) on. A locked row is read as it is once the lock is
    // granted, the rest as of the statement's start: after a wait for another writer the
    // events stop short of the version, which says so. Without the lock (ordo_read_head)
    // everything is read as of the statement's start. The snapshot's state comes on its own
    // event's row only; without a snapshot past `known`, the events start at `known`'s. A
    // stream without a row here is new, unless this shard fences its partition (the last
    // column, read then only).
    const auto rows =
        txn_.exec_prepared(statement, stream, format, static_cast<std::int64_t>(max_count) + 1,
                           hash_of(stream), known);
    StreamHead head;
    std::vector<RecordedEvent> events;
    for (const auto& row : rows) {
        head.version = row[0].is_null() ? 0 : row[0].as<std::int64_t>();
        if (!row[2].is_null()) {
            head.snapshot =
                Snapshot{row[1].as<std::int64_t>(), nlohmann::json::parse(row[2].c_str())};
        }
        if (row[3].is_null()) continue;  // no events
        auto event = EventStore::event_from_row(row, 3);
        const auto base = row[1].is_null() ? known : row[1].as<std::int64_t>();
        if (event.version == base) {
            if (row[1].is_null()) {
                head.known_at = event.checkpoint();
                head.known_id = std::move(event.event_id);
            } else {
                head.snapshot_at = event.checkpoint();
            }
            continue;
        }
        events.push_back(std::move(event));
    }
    // In version order (sorted here: the join promises none, and a sort in the statement
    // would move every payload once more), at most max_count of them.
    std::sort(events.begin(), events.end(),
              [](const RecordedEvent& a, const RecordedEvent& b) { return a.version < b.version; });
    if (events.size() > max_count) events.resize(max_count);
    if (head.version == 0 && !rows.empty() && rows[0][rows.columns() - 1].as<bool>()) {
        throw fenced(stream);
    }
    head.events = upcast_all(upcasters_, std::move(events));
    return head;
}

void PgSession::save_snapshot(const std::string& stream, const Snapshot& snapshot, int format) {
    // Not on a partition this shard fences: a snapshot saved in a transaction of its own after
    // the append (an unlocked command's) may come after a move fenced the stream's partition,
    // and must leave nothing on a shard the stream is leaving or has left. A snapshot is only
    // a shortcut for later loads, so the one not saved is no loss.
    txn_.exec_params(
        "INSERT INTO ordo.snapshots (stream_id, stream_version, schema_version, state) "
        "SELECT $1, $2, $3, $4::jsonb WHERE NOT " +
            fenced_sql("$5") +
            " ON CONFLICT (stream_id) DO UPDATE "
            "SET stream_version = EXCLUDED.stream_version, schema_version = "
            "EXCLUDED.schema_version, state = EXCLUDED.state, taken_at = now() "
            "WHERE ordo.snapshots.stream_version < EXCLUDED.stream_version",
        stream, snapshot.version, format, snapshot.state.dump(), hash_of(stream));
}

std::optional<Checkpoint> PgSession::checkpoint_at(const std::string& stream,
                                                   std::int64_t version) {
    auto rows = txn_.exec_params(
        "SELECT transaction_id::text, global_position FROM ordo.events "
        "WHERE stream_id = $1 AND stream_version = $2",
        stream, version);
    if (rows.empty()) return std::nullopt;
    return Checkpoint{transaction_id_from_xid8(rows[0][0].as<std::string>()),
                      rows[0][1].as<std::int64_t>()};
}

std::int64_t PgSession::stream_version(const std::string& stream) {
    return stream_version_in(txn_, stream);
}

KeyClaim PgSession::claim_key(const std::string& key, const std::string& fingerprint,
                              const std::string& stream) {
    // The first request inserts the row and holds it until commit; a concurrent repeat
    // waits here, then finds the finished row and replays it. Not on a partition this shard
    // fences (migration 0017): a command that appends nothing must not leave its outcome on a
    // shard its stream is leaving.
    const auto hash = hash_of(stream);
    auto claimed = txn_.exec_params(
        std::string{"INSERT INTO ordo.command_log (key, fingerprint, status, response, "
                    "stream_id) SELECT $1, "} +
            kFingerprint + ", 0, 'null', $3 WHERE NOT " + fenced_sql("$4") +
            " ON CONFLICT (key) DO NOTHING RETURNING 1",
        key, fingerprint, stream, hash);
    if (!claimed.empty()) return KeyClaimed{};
    auto row = txn_.exec_params1(
        std::string{"SELECT c.fingerprint = "} + kFingerprint + ", c.status, c.response::text, " +
            fenced_sql("$3") + " FROM (SELECT 1) AS one LEFT JOIN ordo.command_log c ON c.key = $1",
        key, fingerprint, hash);
    if (row[0].is_null()) {
        if (row[3].as<bool>()) {
            throw fenced(stream);
        }
        // Expired between the two statements: as if it had never been claimed.
        throw ConcurrencyConflict(stream, ExpectedVersion::any(), 0);
    }
    if (!row[0].as<bool>()) return KeyTakenByOtherRequest{};
    return KeyFinished{row[1].as<int>(), nlohmann::json::parse(row[2].as<std::string>())};
}

void PgSession::record_outcome(const std::string& key, int status, const nlohmann::json& response) {
    txn_.exec_params("UPDATE ordo.command_log SET status = $2, response = $3::jsonb WHERE key = $1",
                     key, status, response.dump());
}

AppendResult EventStore::append(pqxx::transaction_base& txn, const std::string& stream,
                                ExpectedVersion expected, const std::vector<NewEvent>& events) {
    return PgSession{txn}.append(stream, expected, events);
}

// One append on the store itself, as its batch sees it: the batch's statement sets `result`,
// or the unit's error.
struct AppendRequest {
    const std::string& stream;
    ExpectedVersion expected;
    const std::vector<NewEvent>& events;
    std::optional<AppendResult> result;
};

namespace {
// The error of an append its batch did not do: its stream was busy, or the batch statement
// failed as a whole. The caller runs it alone.
struct RunAlone {};

// Runs `statement`: one autocommit statement that appends. A connection lost while it ran may
// have lost the answer of a statement that committed, so the caller is told OutcomeUnknown
// (nested), as for a commit in doubt; an append is idempotent by its event ids, so running it
// again replays what did commit.
template <class Statement>
auto in_doubt_if_lost(Statement&& statement) {
    try {
        return statement();
    } catch (...) {
        if (!platform::pg::Pool::is_connection_failure(std::current_exception())) throw;
        std::throw_with_nested(platform::OutcomeUnknown(
            "the connection broke while an append statement ran: it may have committed"));
    }
}
}  // namespace

AppendResult EventStore::append(const std::string& stream, ExpectedVersion expected,
                                const std::vector<NewEvent>& events) {
    check_append(stream, events);  // bad input fails here, before it waits for a batch
    AppendRequest request{stream, expected, events, std::nullopt};
    // Batches of appends run their statement, never a unit's work.
    static const GroupCommit::Work none = [](Session&) {};
    try {
        appends_.run(std::chrono::steady_clock::now() + pool_.options().acquire_timeout, none,
                     &request);
        return *request.result;
    } catch (const RunAlone&) {
    }
    // Alone, as a single append: it may wait for its stream's lock, on the caller's thread
    // and outside the batches' slots, so a held stream holds up this append and no other.
    // It has started already, so it waits for a connection as long as the store allows.
    try {
        auto result = pool_.transact<pqxx::nontransaction>([&](pqxx::nontransaction& txn) {
            return in_doubt_if_lost([&] { return append_in(txn, stream, expected, events); });
        });
        if (!result.replayed && notifier_) notifier_->signal();
        return result;
    } catch (const platform::OutcomeUnknown&) {
        wake_in_doubt();
        throw;
    }
}

std::vector<RecordedEvent> EventStore::read_stream(pqxx::transaction_base& txn,
                                                   const std::string& stream,
                                                   std::int64_t from_version,
                                                   std::size_t max_count) {
    return PgSession{txn}.read_stream(stream, from_version, max_count);
}

std::vector<RecordedEvent> EventStore::read_stream(const std::string& stream,
                                                   std::int64_t from_version,
                                                   std::size_t max_count) {
    return pool_.transact<pqxx::nontransaction>([&](auto& txn) {
        return PgSession{txn, upcasters_}.read_stream(stream, from_version, max_count);
    });
}

std::vector<std::vector<RecordedEvent>> EventStore::read_streams(
    const std::vector<StreamFrom>& streams, std::size_t max_count) {
    return pool_.transact<pqxx::nontransaction>([&](auto& txn) {
        return PgSession{txn, upcasters_}.read_streams(streams, max_count);
    });
}

std::vector<RecordedEvent> EventStore::read_all(Checkpoint after, std::size_t max_count) {
    return pool_.transact<pqxx::nontransaction>([&](auto& txn) {
        return PgSession{txn, upcasters_}.read_all(after, max_count);
    });
}

std::vector<RecordedEvent> EventStore::read_partition(pqxx::transaction_base& txn, Checkpoint after,
                                                      int partitions, int partition,
                                                      const std::vector<std::string>& categories,
                                                      std::size_t max_count) {
    return events_of(txn.exec_prepared(
        "ordo_read_partition", std::to_string(after.transaction_id), after.position, partitions,
        partition, text_array(categories), static_cast<std::int64_t>(max_count)));
}

std::vector<RecordedEvent> EventStore::read_range(pqxx::transaction_base& txn, Checkpoint after,
                                                  Checkpoint until,
                                                  const std::vector<std::string>& categories,
                                                  std::size_t max_count,
                                                  const std::vector<std::string>& types) {
    return events_of(txn.exec_prepared("ordo_read_range", std::to_string(after.transaction_id),
                                       after.position, std::to_string(until.transaction_id),
                                       until.position, text_array(categories),
                                       static_cast<std::int64_t>(max_count), text_array(types)));
}

EventStore::Selected EventStore::read_selected(pqxx::transaction_base& txn, Checkpoint after,
                                               Checkpoint until,
                                               const std::vector<std::string>& categories,
                                               const std::vector<std::string>& types,
                                               std::size_t max_count, std::size_t max_scan) {
    if (!(after < until) || max_count == 0) return {{}, std::max(after, until)};
    Checkpoint bound = until;
    if (max_scan > 0 && (!categories.empty() || !types.empty())) {
        auto rows = txn.exec_prepared("ordo_scan_bound", std::to_string(after.transaction_id),
                                      after.position, std::to_string(until.transaction_id),
                                      until.position, static_cast<std::int64_t>(max_scan - 1));
        if (!rows.empty()) {
            bound = {transaction_id_from_xid8(rows[0][0].as<std::string>()),
                     rows[0][1].as<std::int64_t>()};
        }
    }
    Selected out{read_range(txn, after, bound, categories, max_count, types), bound};
    if (out.events.size() == max_count) out.read_to = out.events.back().checkpoint();
    return out;
}

std::int64_t EventStore::count_until(pqxx::transaction_base& txn, Checkpoint until,
                                     const std::vector<std::string>& categories) {
    return txn
        .exec_params1(
            "SELECT count(*) FROM ordo.events WHERE (transaction_id, "
            "global_position) <= ($1::text::xid8, $2::bigint) AND "
            "(cardinality($3::text[]) = 0 OR category = ANY($3::text[]))",
            std::to_string(until.transaction_id), until.position, text_array(categories))[0]
        .as<std::int64_t>();
}

std::optional<Checkpoint> EventStore::head(pqxx::transaction_base& txn) {
    auto rows = txn.exec_prepared("ordo_head");
    if (rows.empty()) return std::nullopt;
    return Checkpoint{transaction_id_from_xid8(rows[0][0].as<std::string>()),
                      rows[0][1].as<std::int64_t>()};
}

ChangedPartitions EventStore::changes_after(pqxx::transaction_base& txn, Checkpoint after,
                                            int partitions, std::size_t limit) {
    // One range of the commit-order index, from `after` up to the horizon, read once: a
    // reader at the head costs an empty range.
    auto rows = txn.exec_params(
        "WITH r AS (SELECT stream_hash, transaction_id, global_position FROM ordo.events"
        "  WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)"
        "    AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
        "  ORDER BY transaction_id, global_position LIMIT $4)"
        " SELECT p.partition, c.n, h.transaction_id::text, h.global_position"
        " FROM (SELECT count(*) AS n FROM r) c"
        " CROSS JOIN LATERAL (SELECT transaction_id, global_position FROM r"
        "   ORDER BY transaction_id DESC, global_position DESC LIMIT 1) h"
        " CROSS JOIN LATERAL (SELECT DISTINCT (stream_hash % $3)::integer AS partition"
        "   FROM r) p",
        std::to_string(after.transaction_id), after.position, partitions,
        static_cast<std::int64_t>(limit));
    ChangedPartitions out;
    for (const auto& row : rows) {
        out.partitions.insert(row[0].as<int>());
        out.complete = row[1].as<std::int64_t>() < static_cast<std::int64_t>(limit);
        out.head = Checkpoint{transaction_id_from_xid8(row[2].as<std::string>()),
                              row[3].as<std::int64_t>()};
    }
    return out;
}

std::optional<double> EventStore::hidden_for(pqxx::transaction_base& txn) {
    // One probe of the commit-order index: the first hidden event in commit order, whose
    // transaction is the oldest that committed above the horizon.
    auto rows = txn.exec(
        "SELECT extract(epoch FROM clock_timestamp() - recorded_at)::float8 FROM ordo.events "
        "WHERE transaction_id >= pg_snapshot_xmin(pg_current_snapshot()) "
        "ORDER BY transaction_id, global_position LIMIT 1");
    if (rows.empty()) return std::nullopt;  // no event hidden
    return rows[0][0].as<double>();
}

EventStore::Unread EventStore::unread_after(pqxx::transaction_base& txn, Checkpoint after) {
    // One probe of the commit-order index. Events at or above the horizon sort after every
    // event below it: when the first event after `after` is hidden, so are all the others.
    auto rows = txn.exec_params(
        "SELECT transaction_id < pg_snapshot_xmin(pg_current_snapshot()), "
        "extract(epoch FROM clock_timestamp() - recorded_at)::float8 FROM ordo.events "
        "WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint) "
        "ORDER BY transaction_id, global_position LIMIT 1",
        std::to_string(after.transaction_id), after.position);
    if (rows.empty()) return {};
    if (rows[0][0].as<bool>()) return {.readable = true};
    return {.hidden_for = rows[0][1].as<double>()};
}

std::int64_t EventStore::stream_version(const std::string& stream) {
    return pool_.transact<pqxx::nontransaction>(
        [&](auto& txn) { return stream_version_in(txn, stream); });
}

StreamHead EventStore::read_head(const std::string& stream, int format, std::size_t max_count,
                                 std::int64_t known, std::optional<Deadline> deadline) {
    const auto read = [&](pqxx::nontransaction& txn) {
        return PgSession{txn, upcasters_}.read_head(stream, format, max_count, known);
    };
    return deadline ? pool_.transact<pqxx::nontransaction>(*deadline, read)
                    : pool_.transact<pqxx::nontransaction>(read);
}

KeyCutoff EventStore::key_cutoff(std::chrono::hours age) {
    // Microseconds since the epoch (extract is exact numeric): no text round trip that a
    // session's DateStyle or time zone could bend.
    const auto micros = pool_.transact<pqxx::nontransaction>([&](auto& txn) {
        return txn
            .exec_params1(
                "SELECT (extract(epoch FROM now() - make_interval(hours => $1)) * 1000000)"
                "::bigint",
                static_cast<int>(age.count()))[0]
            .template as<std::int64_t>();
    });
    return KeyCutoff{std::chrono::microseconds{micros}};
}

std::int64_t EventStore::expire_keys(KeyCutoff cutoff, std::int64_t batch) {
    return pool_.transact([&](pqxx::work& txn) {
        return static_cast<std::int64_t>(
            txn.exec_params("DELETE FROM ordo.command_log WHERE key IN (SELECT key FROM "
                            "ordo.command_log WHERE created_at < "
                            "'epoch'::timestamptz + $1::bigint * interval '1 microsecond' "
                            "ORDER BY created_at LIMIT $2 FOR UPDATE SKIP LOCKED)",
                            static_cast<std::int64_t>(cutoff.time_since_epoch().count()), batch)
                .affected_rows());
    });
}

EventStore::EventStore(platform::pg::Pool& pool, AppendNotifier* notifier,
                       std::optional<GroupCommit::Options> grouping, const Upcasters* upcasters)
    : pool_{pool},
      notifier_{notifier},
      upcasters_{upcasters},
      group_{grouping.value_or(GroupCommit::Options{.max_in_flight = pool.size()}),
             [this](auto& batch, auto by) { run_batch(batch, by); }},
      appends_{GroupCommit::Options{.max_batch = group_.options().max_batch,
                                    .max_in_flight = std::min(kAppendBatchesInFlight,
                                                              group_.options().max_in_flight),
                                    .max_queued = group_.options().max_queued},
               [this](auto& batch, auto by) { run_appends(batch, by); }} {}

namespace {
// How long a unit of a shared batch waits for a lock before it is run again alone.
constexpr std::chrono::milliseconds kBatchLockWait{50};
constexpr std::string_view kLockNotAvailable = "55P03";
}  // namespace

void EventStore::run_session(std::optional<Deadline> deadline,
                             const std::function<void(Session&)>& work) {
    group_.run(
        deadline.value_or(std::chrono::steady_clock::now() + pool_.options().acquire_timeout),
        work);
}

void EventStore::register_metrics(platform::metrics::Registry& registry,
                                  const std::map<std::string, std::string>& labels) {
    batch_units_ = &registry.histogram("ordo_store_batch_units",
                                       "Units of work (commands, saga steps) per group-committed "
                                       "transaction",
                                       labels, {1, 2, 4, 8, 16, 32, 64, 128});
    registry.gauge_callback("ordo_store_queued",
                            "Units of work waiting for a group-commit transaction", labels,
                            [this] { return static_cast<double>(group_.queued()); });
    append_units_ =
        &registry.histogram("ordo_store_append_batch_appends",
                            "Appends made on the store itself per statement (ordo.append_batch)",
                            labels, {1, 2, 4, 8, 16, 32, 64});
    registry.gauge_callback("ordo_store_appends_queued",
                            "Appends made on the store itself waiting for a statement", labels,
                            [this] { return static_cast<double>(appends_.queued()); });
}

void EventStore::run_batch(std::vector<GroupCommit::Unit*>& batch, GroupCommit::Deadline by) {
    if (auto* units = batch_units_.load()) units->observe(static_cast<double>(batch.size()));
    bool appended = false;
    try {
        appended = run_batch_transaction(batch, by);
    } catch (const platform::OutcomeUnknown&) {
        wake_in_doubt();
        throw;
    }
    // Only after the commit: a listener woken earlier could read before the events exist.
    if (appended && notifier_) notifier_->signal();
}

void EventStore::wake_in_doubt() {
    // A commit whose outcome is unknown may have appended: listeners are woken for it too. A
    // wake that finds nothing costs a reader one look; a missed one, the wait until its poll.
    if (notifier_) notifier_->signal();
}

bool EventStore::run_batch_transaction(std::vector<GroupCommit::Unit*>& batch,
                                       GroupCommit::Deadline by) {
    bool appended = false;
    if (batch.size() == 1) {
        // Alone: no savepoint, exactly one transaction's round trips. Its failure is the
        // batch's, which is the same thing here.
        auto alone = [&](pqxx::transaction_base& txn) {
            PgSession session{txn, upcasters_};
            (*batch.front()->work)(session);
            appended = session.appended();
        };
        pool_.transact(by, [&](pqxx::work& txn) { alone(txn); });
    } else {
        pool_.transact(by, [&](pqxx::work& txn) {
            // A unit that waits for a lock (a stream another process is writing) would hold up
            // every unit after it: it gives up soon and runs again alone, where it may wait.
            txn.exec0("SET LOCAL lock_timeout = " + std::to_string(kBatchLockWait.count()));
            for (auto* unit : batch) {
                // A savepoint per unit, by hand: a failed statement aborts the transaction
                // until it is rolled back to the savepoint, and a rollback that fails must
                // fail the batch (a COMMIT of an aborted transaction rolls back without an
                // error), so it is not left to a destructor that swallows what it throws.
                txn.exec0("SAVEPOINT unit");
                PgSession session{txn, upcasters_};
                try {
                    (*unit->work)(session);
                } catch (const pqxx::broken_connection&) {
                    throw;  // the batch is lost: nothing can be rolled back or committed
                } catch (const pqxx::deadlock_detected&) {
                    // This transaction lost a deadlock against another (two batches locking
                    // the same streams in different orders): the unit runs again alone, once
                    // this batch has let go of its locks.
                    unit->error = std::current_exception();
                    unit->retry = true;
                } catch (const pqxx::sql_error& e) {
                    unit->error = std::current_exception();
                    unit->retry = e.sqlstate() == kLockNotAvailable;
                } catch (...) {
                    unit->error = std::current_exception();
                }
                txn.exec0(unit->error ? "ROLLBACK TO SAVEPOINT unit" : "RELEASE SAVEPOINT unit");
                appended = appended || (!unit->error && session.appended());
            }
        });
    }
    return appended;
}

void EventStore::run_appends(std::vector<GroupCommit::Unit*>& batch, GroupCommit::Deadline by) {
    if (auto* units = append_units_.load()) units->observe(static_cast<double>(batch.size()));
    // Alone, ordo.append_events without waiting for a lock (one call, no wrapper); together,
    // ordo.append_batch, whose rows start with the append's place in the batch.
    const bool alone = batch.size() == 1;
    pqxx::result rows;
    try {
        rows = pool_.transact<pqxx::nontransaction>(by, [&](pqxx::nontransaction& txn) {
            if (alone) {
                const auto& request = *batch.front()->append;
                const auto events = encode_batch(request.events);
                return in_doubt_if_lost([&] {
                    return txn.exec_prepared("ordo_append_nowait", request.stream,
                                             request.expected.encoded(), events);
                });
            }
            std::string items = "[";
            for (auto* unit : batch) {
                const auto& request = *unit->append;
                items += (items.size() > 1 ? "," : "");
                items += "{\"stream\":" + nlohmann::json(request.stream).dump() +
                         ",\"expected\":" + std::to_string(request.expected.encoded()) +
                         ",\"events\":" + encode_batch(request.events) + "}";
            }
            items += "]";
            return in_doubt_if_lost([&] { return txn.exec_prepared("ordo_append_batch", items); });
        });
    } catch (const platform::OutcomeUnknown&) {
        wake_in_doubt();
        throw;
    } catch (const pqxx::sql_error&) {
        if (platform::pg::Pool::is_connection_failure(std::current_exception())) throw;
        // The statement failed as a whole and did nothing (say it waited too long for a
        // stream another transaction was creating, or a partition is fenced): each append
        // runs again alone, where it fails or succeeds by itself.
        for (auto* unit : batch) unit->error = std::make_exception_ptr(RunAlone{});
        return;
    }
    const pqxx::row::size_type column = alone ? 0 : 1;
    bool appended = false;
    std::vector<bool> answered(batch.size(), false);
    for (pqxx::result::size_type i = 0; i < rows.size();) {
        const auto item = alone ? 1 : rows[i][0].as<std::size_t>();
        auto end = i + 1;
        while (end < rows.size() && (alone || rows[end][0].as<std::size_t>() == item)) ++end;
        auto* unit = batch.at(item - 1);
        auto& request = *unit->append;
        answered[item - 1] = true;
        if (rows[i][column].as<std::string>() == "busy") {
            unit->error = std::make_exception_ptr(RunAlone{});  // alone, it waits for the lock
        } else {
            try {
                request.result =
                    append_outcome(request.stream, request.expected, rows, i, end, column);
                appended = appended || !request.result->replayed;
            } catch (...) {
                unit->error = std::current_exception();
            }
        }
        i = end;
    }
    for (std::size_t i = 0; i < batch.size(); ++i) {
        if (!answered[i]) {
            batch[i]->error = std::make_exception_ptr(
                std::logic_error("the append statement gave no outcome for an append"));
        }
    }
    // Only after the commit: a listener woken earlier could read before the events exist.
    if (appended && notifier_) notifier_->signal();
}

}  // namespace ordo::eventstore
