#pragma once

// Projections wrapped so that applying an event continues its trace.

#include <memory>
#include <string>
#include <vector>

#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "projections/projection.hpp"

namespace ordo::platform::otlp {
class Exporter;
}

namespace ordo::projections {

// Wraps a projection so that applying an event continues the event's trace: a CONSUMER span
// ("process <category>", a child of the span that appended the event, read from its
// metadata) when `spans` is set, and a debug log line with the trace and span ids. The
// parent is the appending span rather than the relay's publish span because the runtime
// may read the event from the store, where no publish happened; either way the tree is the
// same. A batch that is rolled back and retried records its spans again.
class TracedProjection final : public Projection {
   public:
    TracedProjection(std::unique_ptr<Projection> inner, platform::otlp::Exporter* spans,
                     platform::Logger log);

    std::string name() const override { return inner_->name(); }
    std::vector<std::string> categories() const override { return inner_->categories(); }
    std::vector<std::string> tables() const override { return inner_->tables(); }
    std::chrono::milliseconds worst_apply() const override { return inner_->worst_apply(); }
    void apply(ReadModelTxn& txn, const eventstore::RecordedEvent& event) override;
    // The inner projection's batch, then a span (and log line) per event, each spanning the
    // whole batch. A batch that fails records none: the runtime applies its events again one
    // at a time, and those applies record theirs.
    void apply_batch(ReadModelTxn& txn, const EventRefs& events) override;

   private:
    bool observed() const;
    void record(const eventstore::RecordedEvent& event, platform::Clock::time_point start,
                const std::string& error);

    std::unique_ptr<Projection> inner_;
    platform::otlp::Exporter* spans_;
    platform::Logger log_;
};

// Wraps each of `projections`.
std::vector<std::unique_ptr<Projection>> traced(
    std::vector<std::unique_ptr<Projection>> projections, platform::otlp::Exporter* spans,
    const platform::Logger& log);

}  // namespace ordo::projections
