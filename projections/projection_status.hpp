#pragma once

// What a runtime shows of the slots it owns: how far each lags (eventstore/lag.hpp) and its
// projection's breaker state, in the slot store (ordo.projection_status: the admin view) and the
// lag gauges. Best effort: a failure to write it is logged once and never stops the projections.

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "projections/slot.hpp"
#include "projections/slot_store.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::projections {

class SinkBreakers;

// Used by the runtime's thread only.
class ProjectionStatus {
   public:
    ProjectionStatus(SlotStore& store, std::string instance, std::chrono::milliseconds interval,
                     const platform::Clock& clock, platform::Logger log,
                     platform::metrics::Registry& metrics);
    ~ProjectionStatus();
    ProjectionStatus(const ProjectionStatus&) = delete;
    ProjectionStatus& operator=(const ProjectionStatus&) = delete;

    // Writes the status when the interval has passed since the last write, or after soon().
    void write_if_due(const std::vector<Projection*>& projections, const std::vector<Slot>& slots,
                      SinkBreakers& breakers);
    // The next write_if_due writes: a change (a breaker's) shows in the admin view at once.
    void soon();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::projections
