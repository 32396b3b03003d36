// The statements of a partition move (see partition_move.hpp).
#include "eventstore/partition_move.hpp"

#include <map>
#include <optional>
#include <stdexcept>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/events.hpp"
#include "platform/core/errors.hpp"

namespace ordo::eventstore {
namespace {

constexpr std::string_view kSteps[] = {"fencing",  "copying", "flipping",
                                       "removing", "done",    "rolled_back"};

// The partition's events on a shard, by the hash every event row carries.
constexpr const char* kOfPartition = "stream_hash % $1 = $2";

// The partition's streams on a shard: those its events name.
constexpr const char* kStreamsOfPartition =
    "stream_id IN (SELECT DISTINCT stream_id FROM ordo.events WHERE stream_hash % $1 = $2)";

// The partition's command-log rows, of commands on its streams, whether they appended or not.
constexpr const char* kCommandsOfPartition =
    "stream_id IS NOT NULL AND ordo.stream_hash(stream_id) % $1 = $2";

Checkpoint key_of(const pqxx::row& row, pqxx::row::size_type first) {
    return {transaction_id_from_xid8(row[first].as<std::string>()),
            row[first + 1].as<std::int64_t>()};
}

// The rows of `select` (one JSON object per row, in column 0) from `source`, inserted into
// `destination` by `insert` (which reads them from the jsonb array $1), in one transaction.
void copy_rows(pqxx::connection_base& source, pqxx::connection_base& destination, int partitions,
               int partition, const std::string& select, const std::string& insert) {
    std::string rows = "[";
    {
        pqxx::read_transaction txn{source};
        for (const auto& row : txn.exec_params(select, partitions, partition)) {
            if (rows.size() > 1) rows += ',';
            rows += row[0].as<std::string>();
        }
    }
    rows += ']';
    pqxx::work txn{destination};
    txn.exec_params(insert, rows);
    txn.commit();
}

}  // namespace

std::string_view to_string(MoveStep step) {
    return kSteps[static_cast<int>(step)];
}

MoveStep parse_move_step(std::string_view name) {
    for (int i = 0; i < static_cast<int>(std::size(kSteps)); ++i) {
        if (kSteps[i] == name) return static_cast<MoveStep>(i);
    }
    throw std::invalid_argument("not a move step: " + std::string{name});
}

std::optional<PartitionMove> lock_open_move(pqxx::transaction_base& txn, int partition) {
    auto rows = txn.exec_params(
        "SELECT id, from_shard, to_shard, step FROM ordo.partition_moves "
        "WHERE partition = $1 AND step NOT IN ('done', 'rolled_back') FOR UPDATE",
        partition);
    if (rows.empty()) return std::nullopt;
    return PartitionMove{rows[0][0].as<std::int64_t>(), partition, rows[0][1].as<int>(),
                         rows[0][2].as<int>(), parse_move_step(rows[0][3].as<std::string>())};
}

PartitionMove begin_move(pqxx::transaction_base& txn, int partition, int from, int to) {
    if (lock_open_move(txn, partition)) {
        throw platform::InvalidInput("partition " + std::to_string(partition) +
                                     " is being moved already");
    }
    auto id = txn.exec_params1(
                     "INSERT INTO ordo.partition_moves (partition, from_shard, to_shard) "
                     "VALUES ($1, $2, $3) RETURNING id",
                     partition, from, to)[0]
                  .as<std::int64_t>();
    return PartitionMove{id, partition, from, to, MoveStep::fencing};
}

void set_move_step(pqxx::transaction_base& txn, std::int64_t id, MoveStep step) {
    const bool finished = step == MoveStep::done || step == MoveStep::rolled_back;
    txn.exec_params(
        "UPDATE ordo.partition_moves SET step = $2, updated_at = now(), "
        "finished_at = CASE WHEN $3 THEN now() END WHERE id = $1",
        id, std::string{to_string(step)}, finished);
}

void record_verification(pqxx::transaction_base& txn, std::int64_t id, std::int64_t events,
                         const std::string& digest) {
    txn.exec_params("UPDATE ordo.partition_moves SET events = $2, digest = $3 WHERE id = $1", id,
                    events, digest);
}

void fence_partition(pqxx::transaction_base& txn, int partitions, int partition) {
    auto other = txn.exec_params(
        "SELECT partitions FROM ordo.partition_fences WHERE partitions <> $1 LIMIT 1", partitions);
    if (!other.empty()) {
        throw platform::InvalidInput("this shard's fences are of " + other[0][0].as<std::string>() +
                                     " partitions, not " + std::to_string(partitions));
    }
    txn.exec_params(
        "INSERT INTO ordo.partition_fences (partition, partitions) VALUES ($1, $2) "
        "ON CONFLICT (partition) DO NOTHING",
        partition, partitions);
}

void unfence_partition(pqxx::transaction_base& txn, int partition) {
    txn.exec_params("DELETE FROM ordo.partition_fences WHERE partition = $1", partition);
}

void wait_for_older_transactions(pqxx::connection_base& conn, std::chrono::milliseconds timeout) {
    const auto until = std::chrono::steady_clock::now() + timeout;
    // The transactions open in this database now, by the virtual transaction id each holds a
    // lock on for as long as it runs: pg_locks and a session's database and pid are readable
    // by any role, where pg_stat_activity's transaction start of another role's session is
    // not (it needs pg_read_all_stats, which the move's role has no reason to hold). Any of
    // them may have read before the fence (a key claim's snapshot, say) and write after it.
    // Sessions only (a background process, autovacuum say, has no user, and writes no event).
    constexpr const char* kOpen =
        "SELECT l.virtualxid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'virtualxid' AND l.mode = 'ExclusiveLock' AND l.granted "
        "AND a.datname = current_database() AND a.usesysid IS NOT NULL "
        "AND l.pid <> pg_backend_pid()";
    std::vector<std::string> open;
    {
        pqxx::nontransaction txn{conn};
        for (const auto& row : txn.exec(kOpen)) open.push_back(row[0].as<std::string>());
    }
    std::string listed = "{";  // a text[] literal; a virtual id is "<backend>/<local id>"
    for (const auto& id : open) listed += (listed.size() > 1 ? ",\"" : "\"") + id + "\"";
    listed += "}";
    for (auto pause = std::chrono::milliseconds(5);;
         pause = std::min(pause * 2, std::chrono::milliseconds(200))) {
        pqxx::nontransaction txn{conn};
        // A prepared (two-phase) transaction belongs to no session, and may hold an append
        // of the partition until it is committed: it is waited for too.
        auto older = txn.exec_params(
            "SELECT 'pid ' || a.pid || ' (' || coalesce(nullif(a.application_name, ''), "
            "a.usename::text, '?') || ')' FROM pg_locks l JOIN pg_stat_activity a "
            "ON a.pid = l.pid WHERE l.locktype = 'virtualxid' AND l.mode = 'ExclusiveLock' "
            "AND l.granted AND l.virtualxid = ANY ($1::text[]) "
            "UNION ALL SELECT 'prepared transaction ' || gid FROM pg_prepared_xacts "
            "WHERE database = current_database() LIMIT 1",
            listed);
        if (older.empty()) return;
        if (std::chrono::steady_clock::now() >= until) {
            throw platform::Unavailable("a transaction older than the fence is still open: " +
                                        older[0][0].as<std::string>());
        }
        std::this_thread::sleep_for(pause);
    }
}

void wait_for_relay(pqxx::connection_base& conn, int partitions, int partition, int shard,
                    std::chrono::milliseconds timeout) {
    std::optional<Checkpoint> last;
    {
        pqxx::read_transaction txn{conn};
        auto rows = txn.exec_params(
            std::string{"SELECT transaction_id::text, global_position FROM ordo.events WHERE "} +
                kOfPartition + " ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
            partitions, partition);
        if (!rows.empty()) last = key_of(rows[0], 0);
    }
    if (!last) return;
    const auto until = std::chrono::steady_clock::now() + timeout;
    for (auto pause = std::chrono::milliseconds(5);;
         pause = std::min(pause * 2, std::chrono::milliseconds(200))) {
        pqxx::nontransaction txn{conn};
        auto at = txn.exec_params(
            "SELECT (transaction_id, global_position) >= ($2::text::xid8, $3) "
            "FROM ordo.relay_checkpoint WHERE shard = $1",
            shard, std::to_string(last->transaction_id), last->position);
        if (!at.empty() && at[0][0].as<bool>()) return;
        if (std::chrono::steady_clock::now() >= until) {
            throw platform::Unavailable(
                "the relay of shard " + std::to_string(shard) +
                " has not published the partition's last event (" + last->token() +
                "): it would never be published once the partition moves; start the relay");
        }
        std::this_thread::sleep_for(pause);
    }
}

namespace {

// Where a copy of the partition's events goes on from: after the source's position of the
// last copy on the destination (the copies are inserted in the source's commit order, a batch
// per transaction, so everything before it is there), or from the start.
Checkpoint copied_up_to(pqxx::connection_base& source, pqxx::connection_base& destination,
                        int partitions, int partition, int source_shard) {
    std::optional<std::string> last;
    {
        pqxx::read_transaction txn{destination};
        auto rows = txn.exec_params(
            std::string{"SELECT event_id::text FROM ordo.events WHERE "} + kOfPartition +
                " AND moved_from = $3 ORDER BY global_position DESC LIMIT 1",
            partitions, partition, source_shard);
        if (!rows.empty()) last = rows[0][0].as<std::string>();
    }
    if (!last) return {};
    pqxx::read_transaction txn{source};
    auto rows = txn.exec_params(
        "SELECT transaction_id::text, global_position FROM ordo.events WHERE event_id = $1", *last);
    return rows.empty() ? Checkpoint{} : key_of(rows[0], 0);
}

// Copies the partition's events from where the destination's copies end, in the source's
// commit order, `batch` per destination transaction; with `settled_only`, only those of
// transactions below the source's horizon when it starts (every one that could still commit
// before them has ended, so nothing will ever appear among them). Returns the events copied.
std::int64_t copy_events(pqxx::connection_base& source, pqxx::connection_base& destination,
                         int partitions, int partition, int source_shard, int batch,
                         bool settled_only, const std::function<void()>& after_batch) {
    std::int64_t copied = 0;
    Checkpoint after = copied_up_to(source, destination, partitions, partition, source_shard);
    // Settled: below the horizon as it is now. Taken once, so that a partition written to
    // all along is not chased: what comes meanwhile is the copy under the fence's.
    std::optional<std::string> horizon;
    if (settled_only) {
        pqxx::read_transaction txn{source};
        horizon =
            txn.exec1("SELECT pg_snapshot_xmin(pg_current_snapshot())::text")[0].as<std::string>();
    }
    for (;;) {
        std::vector<std::string> events;
        {
            pqxx::read_transaction txn{source};
            auto rows = txn.exec_params(
                std::string{"SELECT transaction_id::text, global_position, "
                            "json_build_object('stream_id', stream_id, 'category', category, "
                            "'stream_version', stream_version, 'event_id', event_id, "
                            "'event_type', event_type, 'schema_version', schema_version, "
                            "'payload', payload, 'metadata', metadata, "
                            "'recorded_at', recorded_at)::text FROM ordo.events WHERE "} +
                    kOfPartition +
                    " AND (transaction_id, global_position) > ($3::text::xid8, $4) "
                    "AND ($6::text IS NULL OR transaction_id < $6::text::xid8) "
                    "ORDER BY transaction_id, global_position LIMIT $5",
                partitions, partition, std::to_string(after.transaction_id), after.position, batch,
                horizon ? horizon->c_str() : nullptr);
            for (const auto& row : rows) events.push_back(row[2].as<std::string>());
            if (!rows.empty()) after = key_of(rows[rows.size() - 1], 0);
        }
        if (events.empty()) break;
        std::string array = "[";
        for (std::size_t i = 0; i < events.size(); ++i) array += (i ? "," : "") + events[i];
        array += "]";
        pqxx::work txn{destination};
        txn.exec_params(
            "INSERT INTO ordo.events (stream_id, category, stream_version, event_id, event_type, "
            "schema_version, payload, metadata, recorded_at, moved_from) "
            "SELECT e->>'stream_id', e->>'category', (e->>'stream_version')::bigint, "
            "(e->>'event_id')::uuid, e->>'event_type', (e->>'schema_version')::integer, "
            "e->'payload', e->'metadata', (e->>'recorded_at')::timestamptz, $2 "
            "FROM jsonb_array_elements($1::jsonb) WITH ORDINALITY AS r(e, i) ORDER BY i "
            "ON CONFLICT (event_id) DO NOTHING",
            array, source_shard);
        txn.commit();
        copied += static_cast<std::int64_t>(events.size());
        if (after_batch) after_batch();
    }
    return copied;
}

}  // namespace

std::int64_t precopy_partition(pqxx::connection_base& source, pqxx::connection_base& destination,
                               int partitions, int partition, int source_shard, int batch,
                               const std::function<void()>& after_batch) {
    return copy_events(source, destination, partitions, partition, source_shard, batch, true,
                       after_batch);
}

std::int64_t copy_partition(pqxx::connection_base& source, pqxx::connection_base& destination,
                            int partitions, int partition, int source_shard, int batch,
                            const std::function<void()>& after_batch) {
    const auto copied = copy_events(source, destination, partitions, partition, source_shard, batch,
                                    false, after_batch);
    copy_rows(source, destination, partitions, partition,
              std::string{"SELECT json_build_object('stream_id', stream_id, 'version', "
                          "version)::text FROM ordo.streams WHERE "} +
                  kStreamsOfPartition,
              "INSERT INTO ordo.streams (stream_id, version) "
              "SELECT e->>'stream_id', (e->>'version')::bigint FROM jsonb_array_elements($1) e "
              "ON CONFLICT (stream_id) DO UPDATE SET version = EXCLUDED.version");
    copy_rows(source, destination, partitions, partition,
              std::string{"SELECT row_to_json(s)::text FROM ordo.snapshots s WHERE "} +
                  kStreamsOfPartition,
              "INSERT INTO ordo.snapshots SELECT * FROM jsonb_populate_recordset("
              "NULL::ordo.snapshots, $1) ON CONFLICT (stream_id) DO UPDATE SET "
              "stream_version = EXCLUDED.stream_version, schema_version = "
              "EXCLUDED.schema_version, state = EXCLUDED.state, taken_at = EXCLUDED.taken_at");
    copy_rows(source, destination, partitions, partition,
              std::string{"SELECT row_to_json(c)::text FROM ordo.command_log c WHERE "} +
                  kCommandsOfPartition,
              "INSERT INTO ordo.command_log SELECT * FROM jsonb_populate_recordset("
              "NULL::ordo.command_log, $1) ON CONFLICT (key) DO NOTHING");
    return copied;
}

UnroutedKeys unrouted_command_keys(pqxx::connection_base& conn) {
    pqxx::read_transaction txn{conn};
    const auto row = txn.exec1(
        "SELECT count(*), coalesce(to_char(max(created_at) AT TIME ZONE 'UTC', "
        "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), '') FROM ordo.command_log WHERE stream_id IS NULL");
    return {row[0].as<std::int64_t>(), row[1].as<std::string>()};
}

PartitionDigest digest_partition(pqxx::connection_base& conn, int partitions, int partition) {
    PartitionDigest out;
    pqxx::read_transaction txn{conn};
    Checkpoint after{};
    std::string chain;
    for (;;) {
        auto row = txn.exec_params1(
            std::string{"WITH page AS (SELECT * FROM ordo.events WHERE "} + kOfPartition +
                " AND (transaction_id, global_position) > ($3::text::xid8, $4) "
                "ORDER BY transaction_id, global_position LIMIT 5000) "
                "SELECT count(*), md5($5 || coalesce(string_agg(concat_ws(' ', event_id, "
                "stream_id, stream_version, event_type, schema_version, payload::text, "
                "metadata::text, extract(epoch FROM recorded_at)), E'\\n' "
                "ORDER BY transaction_id, global_position), '')), "
                "(SELECT transaction_id::text FROM page "
                "ORDER BY transaction_id DESC, global_position DESC LIMIT 1), "
                "(SELECT global_position FROM page "
                "ORDER BY transaction_id DESC, global_position DESC LIMIT 1) FROM page",
            partitions, partition, std::to_string(after.transaction_id), after.position, chain);
        const auto count = row[0].as<std::int64_t>();
        if (count == 0) break;
        out.events += count;
        chain = row[1].as<std::string>();
        after = key_of(row, 2);
    }
    auto streams = txn.exec_params1(
        std::string{"SELECT md5(coalesce(string_agg(stream_id || ' ' || version, E'\\n' "
                    "ORDER BY stream_id), '')) FROM ordo.streams WHERE "} +
            kStreamsOfPartition,
        partitions, partition);
    out.digest = chain + "/" + streams[0].as<std::string>();
    return out;
}

OneSidedEvents one_sided_events(pqxx::connection_base& source, pqxx::connection_base& destination,
                                int partitions, int partition, std::size_t limit) {
    using Snapshot = pqxx::transaction<pqxx::repeatable_read, pqxx::read_only>;
    // One side's event ids in id order (a uuid's text sorts as the uuid), a page at a time.
    struct Side {
        Snapshot txn;
        int partitions, partition;
        std::vector<std::string> page;
        std::size_t at = 0;
        bool ended = false;
        const std::string* next() {
            if (at == page.size() && !ended) {
                auto rows = txn.exec_params(
                    std::string{"SELECT event_id::text FROM ordo.events WHERE "} + kOfPartition +
                        " AND ($3::text IS NULL OR event_id > $3::text::uuid) "
                        "ORDER BY event_id LIMIT 5000",
                    partitions, partition,
                    page.empty() ? std::optional<std::string>{} : std::optional{page.back()});
                page.clear();
                at = 0;
                for (const auto& row : rows) page.push_back(row[0].as<std::string>());
                ended = page.empty();
            }
            return at < page.size() ? &page[at] : nullptr;
        }
    };
    Side from{Snapshot{source}, partitions, partition};
    Side to{Snapshot{destination}, partitions, partition};
    for (auto* side : {&from, &to}) side->txn.exec0("SET LOCAL statement_timeout = '60s'");
    OneSidedEvents out;
    for (;;) {
        const auto* a = from.next();
        const auto* b = to.next();
        if (!a && !b) break;
        if (a && b && *a == *b) {
            ++from.at;
            ++to.at;
            continue;
        }
        // One more difference: cut short only when a list is full already.
        const bool at_source = a && (!b || *a < *b);
        auto& list = at_source ? out.source_only : out.destination_only;
        if (list.size() == limit) {
            out.cut_short = true;
            break;
        }
        list.push_back(at_source ? *a : *b);
        ++(at_source ? from : to).at;
    }
    return out;
}

void remove_partition(pqxx::connection_base& conn, int partitions, int partition) {
    pqxx::work txn{conn};
    fence_partition(txn, partitions, partition);
    txn.exec_params("UPDATE ordo.partition_fences SET removable = true WHERE partition = $1",
                    partition);
    txn.exec_params(std::string{"DELETE FROM ordo.command_log WHERE "} + kCommandsOfPartition,
                    partitions, partition);
    txn.exec_params(std::string{"DELETE FROM ordo.snapshots WHERE "} + kStreamsOfPartition,
                    partitions, partition);
    txn.exec_params(std::string{"DELETE FROM ordo.streams WHERE "} + kStreamsOfPartition,
                    partitions, partition);
    txn.commit();
    // The events in batches, each a short transaction: a long one would hold the shard's
    // horizon, and with it every reader of every partition there, until it ended. The last
    // first: a rollback's removal of copies killed halfway leaves a prefix of the partition,
    // from whose end a move run again goes on copying (copied_up_to). Each batch walks the
    // commit order down from where the one before stopped, not from the newest event again:
    // the other partitions' events above it would be read anew by every batch.
    std::optional<std::pair<std::string, std::int64_t>> below;
    for (;;) {
        pqxx::work batch{conn};
        const auto deleted = batch.exec_params(
            std::string{"WITH gone AS (DELETE FROM ordo.events WHERE global_position IN "
                        "(SELECT global_position FROM ordo.events WHERE "} +
                kOfPartition +
                " AND ($3::text IS NULL OR (transaction_id, global_position) < "
                "($3::text::xid8, $4::bigint)) ORDER BY transaction_id DESC, "
                "global_position DESC LIMIT 5000) RETURNING transaction_id, global_position) "
                "SELECT transaction_id::text, global_position FROM gone "
                "ORDER BY transaction_id, global_position LIMIT 1",
            partitions, partition, below ? std::optional<std::string>{below->first} : std::nullopt,
            below ? below->second : 0);
        batch.commit();
        if (deleted.empty()) break;
        below = {deleted[0][0].as<std::string>(), deleted[0][1].as<std::int64_t>()};
    }
    pqxx::work done{conn};
    done.exec_params("UPDATE ordo.partition_fences SET removable = false WHERE partition = $1",
                     partition);
    done.commit();
}

void rebase_partition(pqxx::transaction_base& control, pqxx::connection_base& source,
                      pqxx::connection_base& destination, int partitions,
                      const PartitionMove& move) {
    pqxx::read_transaction from{source};
    pqxx::read_transaction to{destination};
    // The destination's position of the partition's k-th event in the source's order: two
    // scans of the partition up to the checkpoint, long for a large one. So each checkpoint's
    // is worked out first, without locking anything; under the locks below only a checkpoint
    // that moved meanwhile to a place inside the partition (a projection catching up with it:
    // fenced on both shards, it has finished growing) is counted again.
    std::map<Checkpoint, Checkpoint> known;
    // A checkpoint at or past the partition's last event (an idle slot the sweep moved along
    // with its shard's other partitions: most of them) rebases to the last copy, uncounted.
    auto last_of = [&](pqxx::transaction_base& txn) -> std::optional<Checkpoint> {
        auto rows = txn.exec_params(
            std::string{"SELECT transaction_id::text, global_position FROM ordo.events WHERE "} +
                kOfPartition + " ORDER BY transaction_id DESC, global_position DESC LIMIT 1",
            partitions, move.partition);
        if (rows.empty()) return std::nullopt;
        return key_of(rows[0], 0);
    };
    const auto source_last = last_of(from);
    const auto destination_last = last_of(to);
    auto rebased = [&](Checkpoint at) -> Checkpoint {
        if (at == Checkpoint{}) return at;
        if (!source_last) return Checkpoint{};  // an empty partition: nothing to be past
        if (at >= *source_last && destination_last) return *destination_last;
        if (auto it = known.find(at); it != known.end()) return it->second;
        const auto k =
            from.exec_params1(
                    std::string{"SELECT count(*) FROM ordo.events WHERE "} + kOfPartition +
                        " AND (transaction_id, global_position) <= "
                        "($3::text::xid8, $4)",
                    partitions, move.partition, std::to_string(at.transaction_id), at.position)[0]
                .as<std::int64_t>();
        if (k == 0) return Checkpoint{};
        auto row = to.exec_params1(std::string{"SELECT transaction_id::text, global_position "
                                               "FROM ordo.events WHERE "} +
                                       kOfPartition +
                                       " ORDER BY transaction_id, global_position "
                                       "OFFSET $3 LIMIT 1",
                                   partitions, move.partition, k - 1);
        return known.emplace(at, key_of(row, 0)).first->second;
    };
    constexpr const char* kCheckpoints =
        "SELECT projection, transaction_id::text, global_position "
        "FROM ordo.projection_checkpoints WHERE partition = $1 AND coalesce(shard, $2) = $2";
    for (const auto& row : control.exec_params(kCheckpoints, move.partition, move.from)) {
        rebased(key_of(row, 1));
    }
    // The map's lock, as writing the next map takes it: a checkpoint row being made now
    // (ordo.partition_owner, under a conflicting lock) is committed before the rows are read
    // below, or made after this commits, naming the new owner.
    control.exec0("LOCK TABLE ordo.shard_map IN EXCLUSIVE MODE");
    // In the order the projectors lock them (a live batch locks a projection's slots in
    // order), so that the two do not wait on each other in a cycle.
    for (const auto& row :
         control.exec_params(std::string{kCheckpoints} + " ORDER BY projection FOR UPDATE",
                             move.partition, move.from)) {
        const auto at = rebased(key_of(row, 1));
        control.exec_params(
            "UPDATE ordo.projection_checkpoints SET transaction_id = $3::text::xid8, "
            "global_position = $4, shard = $5, updated_at = now() "
            "WHERE projection = $1 AND partition = $2",
            row[0].as<std::string>(), move.partition, std::to_string(at.transaction_id),
            at.position, move.to);
    }
    for (const auto& row :
         control.exec_params("SELECT id, event_id::text FROM ordo.dead_letters "
                             "WHERE partition = $1 AND status IN ('parked', 'retry_requested', "
                             "'skip_requested') FOR UPDATE",
                             move.partition)) {
        auto copy = to.exec_params(
            "SELECT transaction_id::text, global_position FROM ordo.events WHERE event_id = $1",
            row[1].as<std::string>());
        if (copy.empty()) continue;  // an event of another shard's partition: not this move's
        const auto at = key_of(copy[0], 0);
        control.exec_params(
            "UPDATE ordo.dead_letters SET transaction_id = $2::text::xid8, global_position = $3 "
            "WHERE id = $1",
            row[0].as<std::int64_t>(), std::to_string(at.transaction_id), at.position);
    }
    // Readers of the read database (the projector, the saga intake) listen there for appends;
    // waking them with the flip makes them read the partition from its new shard at once, and
    // so start listening to that shard's appends (a shard new to them: PgShardReaders).
    control.exec0(std::string{"NOTIFY "} + AppendNotifier::kChannel);
}

}  // namespace ordo::eventstore
