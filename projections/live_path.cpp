#include "projections/live_path.hpp"

#include "platform/partition.hpp"

namespace ordo::projections {

LiveRun continuing_run(const std::deque<LiveEvent>& buffered, Checkpoint at, int partition,
                       int partitions, std::size_t batch) {
    LiveRun run;
    Checkpoint tip = at;
    std::size_t passed = 0;
    for (const auto& e : buffered) {
        if (e.key <= tip) {
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

}  // namespace ordo::projections
