#pragma once

// The live path of a projection runtime: an ordered JetStream consumer per partition feeding
// that partition's bounded LiveBuffer (projections/live_path.hpp holds the logic). JetStream
// is a cache, the store the truth: whatever the feed misses, refuses or cannot decode, the
// partition reads from the store.

#include <cstddef>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "eventstore/event_store.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/log.hpp"
#include "platform/nats/nats.hpp"
#include "projections/live_path.hpp"

namespace ordo::platform::jetstream {
struct Message;
}

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::projections {

struct Slot;

struct LiveFeedOptions {
    platform::nats::ClientSettings nats;  // no url: no live path, the store carries all
    std::string stream = eventstore::kDefaultJetStream;
    std::string subject_prefix = eventstore::kDefaultSubjectPrefix;
    int partitions = eventstore::kDefaultPartitions;
    std::size_t buffer_bytes = std::size_t{16} << 20;  // split evenly between the partitions
    std::string group;                                 // the runtime's, as a metric label
};

// A JetStream message under `subject_prefix` as a live event, or why it is not one.
std::variant<LiveEvent, eventstore::WireRefusal> decode_live_event(
    std::string_view subject_prefix, const platform::jetstream::Message& message);

// The buffers are filled by the consumers' threads and read and trimmed by the runtime's;
// every method is thread-safe. `arrived` runs (on a consumer's thread) whenever an event
// arrives.
class LiveFeed {
   public:
    LiveFeed(LiveFeedOptions options, std::function<void()> arrived, platform::Logger log,
             platform::metrics::Registry& metrics);
    ~LiveFeed();
    LiveFeed(const LiveFeed&) = delete;
    LiveFeed& operator=(const LiveFeed&) = delete;

    bool enabled() const;
    // Subscribes the partitions that have no live consumer yet. A stream that does not
    // exist yet (no relay has run) is retried at the next call; meanwhile the store carries
    // everything.
    void subscribe();

    // The buffered events of `partition` that continue `at` without a gap, up to `batch`.
    // `shard`: the one `at` is in, when the checkpoint names one (continuing_run).
    LiveRun run(int partition, eventstore::Checkpoint at, std::size_t batch,
                std::optional<int> shard = {}) const;
    // Some buffered event of `partition` lies beyond `at`.
    bool has_after(int partition, eventstore::Checkpoint at) const;

    // Forgets the live events that every owned slot of their partition has applied; a
    // partition with no owned slot needs none (a slot taken later starts from the store).
    void trim(const std::vector<Slot>& slots);

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::projections
