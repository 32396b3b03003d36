#pragma once

// Projections that read every event in its current schema version.

#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "eventstore/upcasting.hpp"
#include "projections/projection.hpp"

namespace ordo::projections {

// Wraps a projection so that it applies each event upcast to its current shape. The runtime
// moves events in their stored shape (from the live feed, the store, a dead letter) and
// upcasts here, at the one place every one of them passes on its way to a projection: an
// event no step can read (UnknownSchemaVersion) then fails its apply like any other poison,
// and is parked as a dead letter holding the event as stored, to be retried once a deploy
// knows its version. `upcasters` outlives the projection.
class UpcastingProjection final : public Projection {
   public:
    UpcastingProjection(std::unique_ptr<Projection> inner, const eventstore::Upcasters& upcasters)
        : inner_{std::move(inner)}, upcasters_{upcasters} {}

    std::string name() const override { return inner_->name(); }
    std::vector<std::string> categories() const override { return inner_->categories(); }
    std::vector<std::string> tables() const override { return inner_->tables(); }
    std::chrono::milliseconds worst_apply() const override { return inner_->worst_apply(); }
    void apply(ReadModelTxn& txn, const eventstore::RecordedEvent& event) override {
        // Most events are current, or of a type without versions: those go through uncopied.
        if (!upcasters_.knows(event.type) ||
            event.schema_version == upcasters_.current_version(event.type)) {
            inner_->apply(txn, event);
            return;
        }
        inner_->apply(txn, upcasters_.upcast(event));
    }
    void apply_batch(ReadModelTxn& txn, const EventRefs& events) override {
        std::deque<eventstore::RecordedEvent> upcast;  // stable addresses for `current`
        EventRefs current;
        current.reserve(events.size());
        for (const auto* event : events) {
            if (!upcasters_.knows(event->type) ||
                event->schema_version == upcasters_.current_version(event->type)) {
                current.push_back(event);
            } else {
                current.push_back(&upcast.emplace_back(upcasters_.upcast(*event)));
            }
        }
        inner_->apply_batch(txn, current);
    }

   private:
    std::unique_ptr<Projection> inner_;
    const eventstore::Upcasters& upcasters_;
};

// Wraps each of `projections`.
std::vector<std::unique_ptr<Projection>> upcasting(
    std::vector<std::unique_ptr<Projection>> projections, const eventstore::Upcasters& upcasters);

}  // namespace ordo::projections
