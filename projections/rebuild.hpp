#pragma once

// The offline rebuild of a projection: options, plan, progress, report.

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "eventstore/event_store.hpp"
#include "eventstore/shard_map.hpp"
#include "eventstore/topology.hpp"
#include "eventstore/upcasting.hpp"
#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "projections/projection.hpp"

namespace ordo::projections {

// Makes the projections of a deployment, writing their tables in the given schema.
using ProjectionFactory =
    std::function<std::vector<std::unique_ptr<Projection>>(const std::string& schema)>;

struct RebuildOptions {
    // A role that owns the projection's tables (the migrator): only the owner may create
    // and drop them, and the service roles are kept away from DDL.
    std::string database_url;
    // P of the projection runtime whose checkpoints it sets.
    int partitions = eventstore::kDefaultPartitions;
    std::size_t batch = 20'000;          // events per transaction
    bool dry_run = false;                // report the plan, change nothing
    bool wait = false;                   // wait until no live projector owns the projection
    bool force = false;                  // rebuild although a live projector owns it
    bool bulk = true;                    // apply_batch() per batch (false: apply() per event)
    std::chrono::seconds owner_ttl{10};  // a projector is alive while its heartbeat is this recent
    std::chrono::seconds wait_timeout{0};          // 0: wait as long as it takes
    std::chrono::milliseconds lock_timeout{5000};  // per swap attempt, for readers to let go
    int swap_attempts = 5;
    // The replay reads events upcast by these to their current shape, as the live runtime's
    // projections do (null: as stored); an event of a version they cannot read fails the
    // rebuild, leaving the live model as it was. Outlives the rebuild.
    const eventstore::Upcasters* upcasters = nullptr;
    // A sharded store's written map: the events are replayed from every shard, each up to its
    // own horizon, and database_url is the read database (tables and checkpoints). Unset:
    // the events are in database_url too.
    std::optional<eventstore::ShardMap> shards;
};

// One (partition) checkpoint of the projection.
struct PartitionCheckpoint {
    int partition;
    eventstore::Checkpoint at;
};

// What a rebuild does; a dry run reports only this.
struct RebuildPlan {
    std::string projection;
    std::vector<std::string> tables;  // live tables, replaced at the swap
    std::string shadow_schema;        // where the new tables are built
    bool leftover_shadow = false;     // an interrupted rebuild left its shadow schema
    eventstore::Checkpoint horizon;   // every event at or below it is replayed
    // Over a sharded store, each shard's horizon, by shard id (`horizon` is then unused): a
    // partition's checkpoint is set to its shard's.
    std::map<int, eventstore::Checkpoint> shard_horizons;
    std::int64_t events = 0;  // events of the projection's categories to replay
    std::vector<PartitionCheckpoint> checkpoints;  // current
    std::vector<std::string> live_owners;          // projector instances that own it now
};

struct RebuildProgress {
    std::int64_t done = 0;
    std::int64_t total = 0;
    double events_per_second = 0;
    std::optional<std::chrono::seconds> remaining;  // unknown until a rate is measured
    bool finished = false;
};

struct RebuildReport {
    RebuildPlan plan;
    bool swapped = false;  // false for a dry run
    std::int64_t applied = 0;
    std::chrono::milliseconds replay_time{0};  // reading and writing the events
    std::chrono::milliseconds total_time{0};   // including preparing and swapping
    bool bulk = false;                         // applied a batch at a time
};

// A live projector owns the projection (and neither wait nor force was asked), or another
// rebuild of it runs. Nothing was changed.
class RebuildRefused : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

// Rebuilds one projection offline: replays the event store (never NATS) up to a horizon
// fixed at the start into tables of a shadow schema, in transactions of `batch` events,
// then in one transaction replaces the live tables by the new ones (same indexes and
// grants) and sets every partition checkpoint to the horizon. Readers see the old model
// until that commit and the new one after; the live runtime continues after the horizon,
// so no event is applied twice or skipped. Killed at any point, it leaves the live model
// as it was; the next run drops the leftover shadow schema and starts again.
// Throws RebuildRefused, platform::InvalidInput (unknown projection, one without tables,
// bad options) or the database's errors.
RebuildReport rebuild(const std::string& projection, const ProjectionFactory& projections,
                      const RebuildOptions& options, const platform::Clock& clock,
                      const platform::Logger& log,
                      const std::function<void(const RebuildProgress&)>& on_progress = {});

// The schema a rebuild of `projection` builds its tables in.
std::string shadow_schema_of(const std::string& projection);

}  // namespace ordo::projections
