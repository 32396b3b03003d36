#pragma once

// The saga intake and the saga view: projections that feed and show the processes.

#include <memory>
#include <string>
#include <vector>

#include "eventstore/shards.hpp"
#include "eventstore/upcasting.hpp"
#include "projections/projection.hpp"
#include "sagas/fulfillment.hpp"

namespace ordo::sagas {

// Feeds the saga processes from the event store, through the projection runtime: each
// event another context publishes becomes events on the processes it concerns, appended in
// the runtime's transaction with ids derived from the source event (so the feed takes
// effect exactly once, and applying a source event again is a no-op), and those processes
// are marked due in ordo.saga_schedule. New orders start in `placing`; see route().
//
// Over a sharded store (`shards` given) the process streams live on their own partitions'
// shards while the intake's checkpoint and the schedule stay in the read database: a
// batch's deliveries are appended through their streams' shards (one transaction per shard,
// which a repeat finds there by the same ids), then the processes are marked due with the
// checkpoint.
// `shards` outlives the projection.
std::unique_ptr<projections::Projection> intake(Mode placing, eventstore::Shards* shards = nullptr);

// The saga view of the query API (read.sagas), for either mode: rebuilt for an order from
// its process streams whenever one of them changes.
// The process streams it folds are read upcast by `upcasters` (null: as stored), which
// outlives the projection.
// Over a sharded store (`shards` given, outliving the projection) the process streams are
// read from their shards, upcast by the shards' own stores.
std::unique_ptr<projections::Projection> saga_view_projection(
    std::string schema = "read", const eventstore::Upcasters* upcasters = nullptr,
    eventstore::Shards* shards = nullptr);

// A UUID derived from a source event id and a salt: the same inputs give the same id.
std::string derived_event_id(const std::string& source_event_id, const std::string& salt);

}  // namespace ordo::sagas
