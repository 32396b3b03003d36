// Moving a partition between shards (`ordo shards move`, docs/scaling.md): the statements of
// each step, on the shards and in the control database, each run as the store's owner.
#pragma once

// A move is a row in the control database's ordo.partition_moves, whose step says what is
// done; every step is idempotent, so a move killed anywhere is run again from its row:
//
//   fencing   the destination fences the partition (nothing but copies may land there) and
//             its events below the source's horizon are copied while it still takes writes
//             (precopy_partition); then the source shard fences it (migration 0017: its
//             appends and key claims are refused from that commit on), and the move waits
//             until every transaction older than the fence has ended: no write of the
//             partition is in flight, and none can start.
//   copying   the partition's events since the copies are copied in the source's commit
//             order, in batches, each a transaction on the destination. Then the rows of its
//             streams: stream versions, snapshots, command-log rows.
//   flipping  both copies are counted and digested in commit order and must be equal; then,
//             in one control-database transaction, every checkpoint of the partition that is
//             in the source's commit order is rebased to the destination's (the k-th event of
//             the partition there is the k-th here), open dead letters to their copies'
//             positions, and the next map version gives the partition to the destination.
//   removing  the destination drops its fence; the source marks its fence removable, deletes
//             the partition's rows, and keeps the fence (the map no longer routes there).
//
// Until the map flips, a move can be rolled back: the copies are deleted from the destination
// and the source's fence is dropped. Services follow the new map by reading it again (every
// second, and at once when a write is refused as PartitionFenced); a projector reads a
// partition from the shard its checkpoint names, which the flip changes with the position.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace pqxx {
class connection_base;
class transaction_base;
}  // namespace pqxx

namespace ordo::eventstore {

enum class MoveStep { fencing, copying, flipping, removing, done, rolled_back };
std::string_view to_string(MoveStep step);
// Throws std::invalid_argument for a name that is not a step.
MoveStep parse_move_step(std::string_view name);

struct PartitionMove {
    std::int64_t id = 0;
    int partition = 0;
    int from = 0;
    int to = 0;
    MoveStep step = MoveStep::fencing;
};

// --- control database ---

// The unfinished move of `partition`, locked for this transaction, or nullopt.
std::optional<PartitionMove> lock_open_move(pqxx::transaction_base& txn, int partition);
// A new move, at its first step. Throws platform::InvalidInput when one is open.
PartitionMove begin_move(pqxx::transaction_base& txn, int partition, int from, int to);
void set_move_step(pqxx::transaction_base& txn, std::int64_t id, MoveStep step);
// What verification found on both shards, kept with the move.
void record_verification(pqxx::transaction_base& txn, std::int64_t id, std::int64_t events,
                         const std::string& digest);

// --- a shard ---

// `partition` (of `partitions`) takes no appends or key claims here from this commit on.
void fence_partition(pqxx::transaction_base& txn, int partitions, int partition);
void unfence_partition(pqxx::transaction_base& txn, int partition);

// Waits until every transaction that was open on `conn`'s database when this is called has
// ended, whatever role runs it and with no monitoring grant (pg_locks' virtual transaction
// ids); throws platform::Unavailable naming one still open when `timeout` passes first.
void wait_for_older_transactions(pqxx::connection_base& conn, std::chrono::milliseconds timeout);

// Waits until shard `shard`'s relay (its checkpoint on `conn`'s database) has published the
// last event of `partition` there: once the partition has moved, nothing would publish it.
// Throws platform::Unavailable when `timeout` passes first.
void wait_for_relay(pqxx::connection_base& conn, int partitions, int partition, int shard,
                    std::chrono::milliseconds timeout);

// Copies every event of `partition` from `source` to `destination` in the source's commit
// order, `batch` events per destination transaction, each marked as moved from
// `source_shard`, going on after the last copy already there (a copy the source's order puts
// earlier is there too). Then the partition's stream rows, snapshots and command-log rows.
// Returns the events this call copied. `after_batch` is called after each committed batch
// (a fault test kills the process there).
std::int64_t copy_partition(pqxx::connection_base& source, pqxx::connection_base& destination,
                            int partitions, int partition, int source_shard, int batch,
                            const std::function<void()>& after_batch = {});

// The same for the events alone, while the source still takes the partition's writes: only
// those below the source's horizon when it starts, which no later commit can precede. Run
// before the fence, it leaves copy_partition, under the fence, only what came since.
// Returns the events copied.
std::int64_t precopy_partition(pqxx::connection_base& source, pqxx::connection_base& destination,
                               int partitions, int partition, int source_shard, int batch,
                               const std::function<void()>& after_batch = {});

// The command-log rows of `conn`'s shard that record no stream: written before migration 0017
// added the column, so no move can tell which partition's they are, and a move leaves them
// behind (a replay of such a request after its stream moved would run it again). They go
// with the command service's key expiry. Their count, and when the newest was written (UTC,
// ISO 8601; empty when there is none).
struct UnroutedKeys {
    std::int64_t count = 0;
    std::string newest;
};
UnroutedKeys unrouted_command_keys(pqxx::connection_base& conn);

// What a shard holds of a partition, digested in its commit order: the events (id, stream,
// version, type, schema, payload, metadata, time) and the streams' versions.
struct PartitionDigest {
    std::int64_t events = 0;
    std::string digest;
    bool operator==(const PartitionDigest&) const = default;
};
PartitionDigest digest_partition(pqxx::connection_base& conn, int partitions, int partition);

// For an operator whose copy differs: the ids of the partition's events that only one of the
// two shards holds, at most `limit` of each (`cut_short` then), walking both in id order a
// page at a time, each side in one snapshot whose statements may take a minute each. Both
// lists empty: the same events on both, differing in content or order.
struct OneSidedEvents {
    std::vector<std::string> source_only;
    std::vector<std::string> destination_only;
    bool cut_short = false;
};
OneSidedEvents one_sided_events(pqxx::connection_base& source, pqxx::connection_base& destination,
                                int partitions, int partition, std::size_t limit = 10);

// Deletes every row of `partition` on `conn`'s shard (events, stream rows, snapshots,
// command-log rows) and leaves it fenced. For the source once the map has flipped, and the
// destination's copies when a move is rolled back. The events go in batches of their own
// transactions; killed halfway, it is run again.
void remove_partition(pqxx::connection_base& conn, int partitions, int partition);

// --- the flip: control database, reading both shards ---

// Rebases the checkpoints and open dead letters of `partition` whose positions are in the
// source's commit order to the destination's. In `control`, which the caller commits with
// the new map; takes the map's lock first (see migrations/0019_partition_owner.sql).
void rebase_partition(pqxx::transaction_base& control, pqxx::connection_base& source,
                      pqxx::connection_base& destination, int partitions,
                      const PartitionMove& move);

}  // namespace ordo::eventstore
