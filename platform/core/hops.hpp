// The pipeline's hop latencies: one histogram family, ordo_hop_seconds{hop="..."}, observed by
// each service where a hop ends, so that the way from a command's commit to a visible read
// (and a saga's from one step to the next) can be broken down (docs/performance.md).
#pragma once

#include <chrono>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "platform/core/metrics.hpp"

namespace ordo::platform::metrics {

inline constexpr std::string_view kHopMetric = "ordo_hop_seconds";

// 0.5 ms to 5 s: the hops of an idle pipeline are a few milliseconds, a queued one seconds.
std::vector<double> hop_buckets();

// The series of hop `name` (with further labels such as the projection), in hop_buckets().
// Takes the registry's lock: look it up once per batch or keep the reference.
Histogram& hop(Registry& registry, std::string_view name, Labels more = {});

// Seconds from a stored time (RFC 3339 UTC, such as an event's recorded_at) to `now`, never
// negative (the writer's clock may be ahead of the reader's); nullopt when unreadable.
std::optional<double> seconds_since(std::string_view recorded_at,
                                    std::chrono::system_clock::time_point now);

}  // namespace ordo::platform::metrics
