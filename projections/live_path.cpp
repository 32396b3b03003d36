// The live path's pure parts: runs of JetStream events that continue a checkpoint, their heap
// footprint, and the bounded LiveBuffer.

#include "projections/live_path.hpp"

#include <nlohmann/json.hpp>

#include "platform/core/partition.hpp"

namespace ordo::projections {

LiveRun continuing_run(const std::deque<LiveEvent>& buffered, Checkpoint at, int partition,
                       int partitions, std::size_t batch, std::optional<int> shard) {
    LiveRun run;
    Checkpoint tip = at;
    std::size_t passed = 0;
    for (const auto& e : buffered) {
        if (e.key <= tip || (shard && e.shard != *shard)) {
            ++passed;
            continue;
        }
        if (e.previous > tip || run.events.size() >= batch ||
            platform::partition_of(e.event.stream_id, partitions) != partition) {
            break;
        }
        run.events.push_back(e.event);
        tip = e.key;
    }
    run.rest_empty = passed + run.events.size() == buffered.size();
    return run;
}

namespace {

// A heap block: what the allocator hands out for `size` bytes, header included.
std::size_t block(std::size_t size) {
    return size == 0 ? 0 : ((size + 8 + 15) / 16) * 16;
}

// A std::string's heap block, none while it fits the small-string buffer.
std::size_t text(const std::string& s) {
    return s.capacity() > 15 ? block(s.capacity() + 1) : 0;
}

}  // namespace

std::size_t footprint(const nlohmann::json& value) {
    switch (value.type()) {
        case nlohmann::json::value_t::object: {
            // std::map: a node per member (links, key, value).
            std::size_t size = block(sizeof(nlohmann::json::object_t));
            for (const auto& [key, member] : value.items()) {
                size += block(32 + sizeof(std::string) + sizeof(nlohmann::json)) + text(key) +
                        footprint(member);
            }
            return size;
        }
        case nlohmann::json::value_t::array: {
            const auto& items = value.get_ref<const nlohmann::json::array_t&>();
            std::size_t size = block(sizeof(nlohmann::json::array_t)) +
                               block(items.capacity() * sizeof(nlohmann::json));
            for (const auto& item : items) size += footprint(item);
            return size;
        }
        case nlohmann::json::value_t::string:
            return block(sizeof(std::string)) +
                   text(value.get_ref<const nlohmann::json::string_t&>());
        default:
            return 0;  // held in the node itself
    }
}

std::size_t footprint(const LiveEvent& e) {
    const auto& r = e.event;
    const auto& m = r.metadata;
    return sizeof(LiveEvent) + 16 /* deque slot and size */ + text(r.stream_id) + text(r.category) +
           text(r.event_id) + text(r.type) + text(r.recorded_at) + text(m.trace_id) +
           text(m.span_id) + text(m.correlation_id) + text(m.causation_id) + text(m.command_id) +
           text(m.actor) + footprint(r.payload);
}

bool LiveBuffer::push(LiveEvent event) {
    const auto size = footprint(event);
    if (bytes_ + size > max_bytes_) return false;
    bytes_ += size;
    sizes_.push_back(size);
    events_.push_back(std::move(event));
    return true;
}

void LiveBuffer::trim(Checkpoint applied, std::optional<int> shard) {
    if (shard) {
        for (std::size_t i = 0; i < events_.size();) {
            if (events_[i].shard == *shard) {
                ++i;
                continue;
            }
            bytes_ -= sizes_[i];
            events_.erase(events_.begin() + static_cast<std::ptrdiff_t>(i));
            sizes_.erase(sizes_.begin() + static_cast<std::ptrdiff_t>(i));
        }
    }
    // Keys rise along the buffer, except for a republished copy, which trails the originals
    // and is passed over by every run anyway: trimming stops at the first key above `applied`.
    while (!events_.empty() && events_.front().key <= applied) {
        bytes_ -= sizes_.front();
        sizes_.pop_front();
        events_.pop_front();
    }
}

void LiveBuffer::clear() {
    events_.clear();
    sizes_.clear();
    bytes_ = 0;
}

}  // namespace ordo::projections
