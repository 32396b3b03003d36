#include "tests/support/upcasters.hpp"

#include "app/upcasters.hpp"

namespace ordo::testing {

const eventstore::Upcasters& upcasters() {
    static const eventstore::Upcasters registry = app::event_upcasters();
    return registry;
}

}  // namespace ordo::testing
