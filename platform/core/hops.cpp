// The hop histogram family and the age of a stored time (see hops.hpp).
#include "platform/core/hops.hpp"

#include <algorithm>

#include "platform/core/utc_time.hpp"

namespace ordo::platform::metrics {

std::vector<double> hop_buckets() {
    return {0.0005, 0.001, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03,
            0.05,   0.075, 0.1,   0.15,  0.25,  0.5,    1,    2.5,   5};
}

Histogram& hop(Registry& registry, std::string_view name, Labels more) {
    more["hop"] = std::string{name};
    return registry.histogram(std::string{kHopMetric},
                              "Latency of one hop of the pipeline, by hop (docs/performance.md)",
                              more, hop_buckets());
}

std::optional<double> seconds_since(std::string_view recorded_at,
                                    std::chrono::system_clock::time_point now) {
    const auto at = parse_utc(recorded_at);
    if (!at) return std::nullopt;
    return std::max(0.0, std::chrono::duration<double>(now - *at).count());
}

}  // namespace ordo::platform::metrics
