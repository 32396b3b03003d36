#pragma once

// The Executor that runs each command as one unit of work, and the answers it records.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "command/fold_cache.hpp"
#include "eventstore/shards.hpp"
#include "eventstore/store.hpp"
#include "platform/core/keyed_turns.hpp"
#include "platform/core/log.hpp"

namespace ordo::platform::pg {
class Pool;
}
namespace ordo::platform::metrics {
class Registry;
class Counter;
}  // namespace ordo::platform::metrics
namespace ordo::eventstore {
class AppendNotifier;
class Upcasters;
}  // namespace ordo::eventstore

namespace ordo::command {

// A command's answer as the HTTP API gives it: a status and a JSON body, which the command
// log stores for replays. A bus command's domain::CommandOutcome is read from it.
struct ApiResponse {
    int status = 200;
    nlohmann::json body;
    bool replayed = false;  // the stored outcome of an earlier identical request
    bool appended = false;  // events were written
};

// A request that must take effect once: its key and a fingerprint of what it asks.
struct Dedup {
    std::string key;          // "http:<Idempotency-Key>" or "cmd:<command id>"
    std::string fingerprint;  // any text that identifies the request's content
};

// The same key was used for a different request.
class KeyReused : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

// Runs one command as one unit of work of the store (one transaction on PostgreSQL; or, for
// a command without a key, first unlocked: see Options::unlocked_first): dedup record, load,
// decide, append. A concurrency
// conflict re-runs the whole unit (bounded, with jittered backoff); a dedup key makes the
// first outcome final, so a repeat returns it without deciding again. Only outcomes
// below 500 are recorded: a failure leaves nothing behind and may be retried.
//
// Commands on one stream take turns in the process before they take a connection (see
// platform::KeyedTurns): the stream's row lock would serialise them anyway, and waiting
// here holds no connection, so one busy stream cannot starve every other stream of the
// pool. A command that cannot start within `start_timeout` (its turn and a connection
// together) throws platform::Overloaded having done nothing.
class Executor {
   public:
    struct Options {
        int max_attempts = 8;
        std::chrono::milliseconds base_backoff{2};
        std::chrono::milliseconds start_timeout{10000};
        std::size_t max_waiting_per_stream = 1024;
        std::size_t max_waiting = 8192;
        // For the PostgreSQL store the executor makes itself: its reads (the aggregates'
        // loads) return events upcast by these (null: as stored). Outlives the executor.
        const eventstore::Upcasters* upcasters = nullptr;
        // A command without a dedup key first runs unlocked: its load is one read that locks
        // nothing (Store::read_head) and its append goes to the store itself (autocommit,
        // group-committed with other appends: EventStore::append), so it costs two round
        // trips and shares its commit instead of a transaction of four. A stream written
        // meanwhile (by another process: commands on one stream take turns in this one)
        // refuses the append at the version read; then the command runs again locked, as
        // one with a key always does, and queues behind the other writer. Such a unit must
        // append last and once: its append has committed when it returns, and a snapshot it
        // saves after is a transaction of its own whose failure is logged, not the command's.
        bool unlocked_first = false;
        // How many streams' folded states are kept in memory, the least recently used
        // dropped first (0: none). A command on a kept stream reads only the events after
        // its fold instead of the snapshot and every event past it. A fold is kept once its
        // command has committed, and is correct whatever other processes write since: the
        // load reads what came after it (eventstore::load).
        std::size_t kept_folds = 4096;
    };

    // On any store: the PostgreSQL one in production, MemoryStore in unit tests. `store`
    // outlives the executor.
    Executor(eventstore::Store& store, platform::metrics::Registry& metrics, platform::Logger log,
             Options options);
    // On the stores of a sharded deployment: each command runs on its stream's shard.
    // `shards` outlives the executor.
    Executor(eventstore::Shards& shards, platform::metrics::Registry& metrics, platform::Logger log,
             Options options);
    // On the PostgreSQL store of `pool` (prepared with EventStore::prepare), which signals
    // `notifier` (optional) after each command that appended.
    Executor(platform::pg::Pool& pool, eventstore::AppendNotifier* notifier,
             platform::metrics::Registry& metrics, platform::Logger log, Options options);
    ~Executor();

    // `unit` runs inside the session, on `stream` (the one stream it writes), and may
    // throw eventstore::ConcurrencyConflict to ask for a retry (see Options::unlocked_first
    // for what an unlocked attempt asks of it). Throws KeyReused,
    // platform::Overloaded (not started), platform::Unavailable. Over a sharded store, the
    // "position" of the answer's body names the stream's shard (eventstore::ShardToken).
    ApiResponse run(const std::string& stream, const std::optional<Dedup>& dedup,
                    const std::function<ApiResponse(eventstore::Session&)>& unit);

    // Deletes dedup records older than `age`, in transactions of at most `batch` rows each
    // (oldest first), so that expiry never holds a long transaction or a large lock set,
    // until none older is left or `max_batches` ran (the caller's loop must stay free to
    // notice a stop signal; the next run goes on). Every shard in turn, each by its own
    // clock and with `max_batches` of its own; a shard that fails keeps no other from its
    // turn, and its error is thrown after the last. Throws std::invalid_argument for a batch
    // or max_batches below 1.
    struct Expired {
        std::int64_t records = 0;
        int batches = 0;
    };
    Expired expire(std::chrono::hours age, std::int64_t batch = 5000, int max_batches = 100);

   private:
    // `owned_store` (when built on a pool) backs `owned_shards` (when built on one store), or
    // `borrowed` are the shards.
    Executor(std::unique_ptr<eventstore::Store> owned_store,
             std::unique_ptr<eventstore::Shards> owned_shards, eventstore::Shards* borrowed,
             platform::metrics::Registry& metrics, platform::Logger log, Options options);

    std::unique_ptr<eventstore::Store> owned_store_;
    std::unique_ptr<eventstore::Shards> owned_shards_;
    eventstore::Shards& shards_;
    platform::Logger log_;
    Options options_;
    platform::metrics::Counter& conflicts_;
    platform::metrics::Counter& replays_;
    platform::metrics::Counter& appends_;
    platform::metrics::Counter& not_started_;
    platform::KeyedTurns turns_;
    FoldCache folds_;
};

}  // namespace ordo::command
