// The bookkeeping of reads parked until the projections pass their consistency token: which
// partitions each needs, and when each wait is over. Pure, so the decisions are unit tested.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eventstore/event_store.hpp"

namespace ordo::query {

// Which projection a read needs, and which of its partitions: one (a single resource's
// stream) or all of them (lists, traces).
struct Reads {
    std::string projection;
    std::optional<int> partition;  // nullopt: every partition
};

// Where each projection's partitions stand, as read.projection_progress says.
class Progress {
   public:
    explicit Progress(int partitions) : partitions_{partitions} {}

    // `shard`: the shard whose commit order `at` is in, when the checkpoint names one (a
    // sharded store's); nullopt for a store that is not sharded.
    void set(const std::string& projection, int partition, eventstore::Checkpoint at,
             std::optional<int> shard = std::nullopt);

    // Whether every partition `reads` covers has passed `token`, a position in the commit
    // order of shard `shard` (0 for a store that is not sharded). A partition with no
    // progress yet has processed nothing, so it has not. A partition whose checkpoint is in
    // another shard's order cannot hold the token's write (there is no order between shards,
    // and a token promises nothing of theirs): it has nothing to wait for. Because the
    // checkpoint names its shard, this holds while a partition moves between shards, whatever
    // map the query service started with.
    bool passed(const Reads& reads, eventstore::Checkpoint token, int shard = 0) const;

   private:
    struct At {
        eventstore::Checkpoint at;
        std::optional<int> shard;
    };
    int partitions_;
    std::map<std::pair<std::string, int>, At> at_;
};

// The bookkeeping of requests parked until their consistency token has been passed: pure,
// with no thread and no clock (time is passed in), so that the decisions are unit tested.
// Capacity is fixed: park() refuses beyond it, so waiting requests cannot grow without bound.
class ParkedWaits {
   public:
    using Clock = std::chrono::steady_clock;
    using Id = std::uint64_t;

    explicit ParkedWaits(std::size_t capacity) : capacity_{capacity} {}

    // Parks a wait; false when `capacity` waits are parked already.
    // `shard`: the token's, as Progress::passed takes it.
    bool park(Id id, Reads reads, eventstore::Checkpoint token, Clock::time_point deadline,
              int shard = 0);

    // A wait that is over: its token was passed, or its deadline came first.
    struct Over {
        Id id;
        bool passed;
    };
    // Removes and returns every wait that `progress` satisfies and every one whose deadline
    // is at or before `now`. A wait both passed and due counts as passed.
    std::vector<Over> settle(const Progress& progress, Clock::time_point now);

    // Removes and returns every wait, as not passed (for shutdown).
    std::vector<Over> drain();

    std::optional<Clock::time_point> next_deadline() const;
    std::size_t size() const { return waits_.size(); }
    bool empty() const { return waits_.empty(); }

   private:
    struct Wait {
        Reads reads;
        eventstore::Checkpoint token;
        Clock::time_point deadline;
        int shard;
    };
    std::size_t capacity_;
    std::map<Id, Wait> waits_;
};

}  // namespace ordo::query
