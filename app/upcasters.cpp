// The registry of every event type Ordo writes, composed from the domain's and the sagas'.
#include "app/upcasters.hpp"

#include <stdexcept>
#include <string>
#include <vector>

#include "domain/schema.hpp"
#include "sagas/process.hpp"

namespace ordo::app {
namespace {

void add_all(eventstore::Upcasters& registry, const std::vector<domain::EventSchema>& schemas,
             const std::vector<domain::Upcaster>& steps) {
    for (const auto& schema : schemas) registry.declare(std::string{schema.type});
    for (const auto& step : steps)
        registry.add(std::string{step.type}, step.from_version, step.step);
    // What writers write (the schemas) and what readers read up to (the chains) must agree:
    // an event written at a version its own readers refuse would be unreadable at once.
    for (const auto& schema : schemas) {
        if (registry.current_version(schema.type) != schema.version) {
            throw std::invalid_argument(std::string{schema.type} + " is written at version " +
                                        std::to_string(schema.version) +
                                        " but its upcasters reach version " +
                                        std::to_string(registry.current_version(schema.type)));
        }
    }
}

}  // namespace

eventstore::Upcasters event_upcasters() {
    eventstore::Upcasters registry;
    add_all(registry, domain::event_schemas(), domain::upcasters());
    add_all(registry, sagas::event_schemas(), sagas::upcasters());
    return registry;
}

}  // namespace ordo::app
