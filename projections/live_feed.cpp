// The live feed: JetStream consumers per partition into bounded LiveBuffers.

#include "projections/live_feed.hpp"

#include <algorithm>
#include <chrono>
#include <mutex>

#include "eventstore/wire.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/jetstream.hpp"
#include "projections/slot.hpp"

namespace ordo::projections {
namespace {

// The live events of one partition, shared by the projections on it: filled by its
// JetStream consumer's thread, read and trimmed by the runtime's.
struct PartitionBuffer {
    explicit PartitionBuffer(std::size_t max_bytes) : events{max_bytes} {}
    mutable std::mutex mutex;
    LiveBuffer events;
};

}  // namespace

std::variant<LiveEvent, eventstore::WireRefusal> decode_live_event(
    std::string_view subject_prefix, const platform::jetstream::Message& message) {
    return eventstore::decode_wire(subject_prefix, message.subject, message.headers, message.data);
}

struct LiveFeed::Impl {
    LiveFeedOptions options;
    std::function<void()> arrived;
    platform::Logger log;
    platform::metrics::Registry& metrics;
    platform::metrics::Gauge& live_bytes;
    platform::metrics::Counter& live_refused;
    platform::metrics::Counter& undecodable;
    std::vector<std::unique_ptr<PartitionBuffer>> buffers;
    std::unique_ptr<platform::jetstream::Client> nats;
    std::vector<std::unique_ptr<platform::jetstream::Client::Subscription>> subscriptions;
    bool warned = false;

    Impl(LiveFeedOptions o, std::function<void()> a, platform::Logger l,
         platform::metrics::Registry& m)
        : options{std::move(o)},
          arrived{std::move(a)},
          log{std::move(l)},
          metrics{m},
          live_bytes{m.gauge("ordo_projection_live_buffer_bytes",
                             "Bytes of live JetStream events buffered, not yet applied by every "
                             "projection of their partition",
                             {{"runtime", options.group}})},
          live_refused{m.counter("ordo_projection_live_refused_total",
                                 "Live events not buffered because the buffer was full (the "
                                 "store carries them instead)",
                                 {{"runtime", options.group}})},
          undecodable{m.counter("ordo_projection_live_undecodable_total",
                                "Live messages dropped because they are not events as the relay "
                                "writes them (the store carries the events instead)",
                                {{"runtime", options.group}})} {
        const auto per_partition =
            options.buffer_bytes / static_cast<std::size_t>(std::max(options.partitions, 1));
        for (int p = 0; p < options.partitions; ++p) {
            buffers.push_back(std::make_unique<PartitionBuffer>(per_partition));
        }
        m.gauge("ordo_projection_live_buffer_limit_bytes",
                "Bound on the bytes of live events buffered (all partitions)",
                {{"runtime", options.group}})
            .set(static_cast<double>(per_partition * buffers.size()));
    }

    ~Impl() {
        subscriptions.clear();  // before the buffers they feed
    }

    PartitionBuffer& buffer(int partition) const {
        return *buffers[static_cast<std::size_t>(partition)];
    }

    void take(PartitionBuffer& buffer, const platform::jetstream::Message& message) {
        auto decoded = decode_live_event(options.subject_prefix, message);
        auto* event = std::get_if<LiveEvent>(&decoded);
        if (!event) {
            // A gap in the live chain, which the store fills; counted, and logged at debug
            // level only, since one bad publisher could otherwise flood the log.
            undecodable.inc();
            log.log(platform::LogLevel::debug, "live message dropped",
                    {{"subject", message.subject},
                     {"reason", std::get<eventstore::WireRefusal>(decoded).reason}});
            return;
        }
        bool kept = false;
        {
            std::lock_guard lock{buffer.mutex};
            const auto before = buffer.events.bytes();
            kept = buffer.events.push(std::move(*event));
            live_bytes.add(static_cast<double>(buffer.events.bytes() - before));
        }
        if (!kept) live_refused.inc();
        arrived();
    }
};

LiveFeed::LiveFeed(LiveFeedOptions options, std::function<void()> arrived, platform::Logger log,
                   platform::metrics::Registry& metrics)
    : impl_{std::make_unique<Impl>(std::move(options), std::move(arrived), std::move(log),
                                   metrics)} {}

LiveFeed::~LiveFeed() = default;

bool LiveFeed::enabled() const {
    return !impl_->options.nats.url.empty();
}

void LiveFeed::subscribe() {
    auto& d = *impl_;
    if (!d.nats) {
        d.nats = std::make_unique<platform::jetstream::Client>(
            d.options.nats, d.log.with_component("nats"), &d.metrics);
        d.subscriptions.resize(static_cast<std::size_t>(d.options.partitions));
    }
    // Older events are in the store; the live path only has to carry what comes next.
    auto since = std::chrono::system_clock::now() - std::chrono::seconds(10);
    for (int p = 0; p < d.options.partitions; ++p) {
        auto& subscription = d.subscriptions[static_cast<std::size_t>(p)];
        if (subscription) continue;
        auto* buffer = &d.buffer(p);
        try {
            subscription = d.nats->subscribe_ordered(
                d.options.stream, d.options.subject_prefix + "." + std::to_string(p) + ".>", since,
                [&d, buffer](platform::jetstream::Message m) { d.take(*buffer, m); });
        } catch (const std::exception& e) {
            if (!d.warned) {
                d.log.warn("no live JetStream subscription yet; reading the store meanwhile",
                           {{"partition", p}, {"error", e.what()}});
                d.warned = true;
            }
            return;
        }
    }
}

LiveRun LiveFeed::run(int partition, eventstore::Checkpoint at, std::size_t batch,
                      std::optional<int> shard) const {
    auto& buffer = impl_->buffer(partition);
    std::lock_guard lock{buffer.mutex};
    return buffer.events.run(at, partition, impl_->options.partitions, batch, shard);
}

bool LiveFeed::has_after(int partition, eventstore::Checkpoint at) const {
    auto& buffer = impl_->buffer(partition);
    std::lock_guard lock{buffer.mutex};
    return buffer.events.has_after(at);
}

void LiveFeed::trim(const std::vector<Slot>& slots) {
    auto& d = *impl_;
    std::vector<std::optional<eventstore::Checkpoint>> applied(d.buffers.size());
    std::vector<bool> owned_any(d.buffers.size(), false);
    // The shard every owned slot of a partition has its checkpoint in, when they agree: the
    // events of other shards are stale (the partition moved) and go.
    std::vector<std::optional<int>> shard(d.buffers.size());
    std::vector<bool> agreed(d.buffers.size(), true);
    for (const auto& s : slots) {
        if (!s.owned) continue;
        const auto p = static_cast<std::size_t>(s.partition);
        if (owned_any[p] && shard[p] != s.shard) agreed[p] = false;
        if (!owned_any[p]) shard[p] = s.shard;
        owned_any[p] = true;
        if (!applied[p] || s.at < *applied[p]) applied[p] = s.at;
    }
    for (std::size_t p = 0; p < d.buffers.size(); ++p) {
        auto& buffer = *d.buffers[p];
        std::lock_guard lock{buffer.mutex};
        const auto before = buffer.events.bytes();
        if (!owned_any[p]) {
            buffer.events.clear();
        } else {
            buffer.events.trim(*applied[p], agreed[p] ? shard[p] : std::nullopt);
        }
        d.live_bytes.add(-static_cast<double>(before - buffer.events.bytes()));
    }
}

}  // namespace ordo::projections
