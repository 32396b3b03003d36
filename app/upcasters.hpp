#pragma once

// The one upcaster registry of the ordo binary: every event type Ordo writes, its current
// schema version and the steps from its older ones.

#include "eventstore/upcasting.hpp"

namespace ordo::app {

// The domain's event types (domain/schema.hpp) and the saga processes' (sagas/process.hpp),
// each declared at its current version with its chain of upcasters. Every reader of
// events in the binary reads through this one registry; tests build theirs here too.
// Throws std::invalid_argument when a chain has a gap or a type's declared version does
// not match its chain: a programming error, found when the process starts.
eventstore::Upcasters event_upcasters();

}  // namespace ordo::app
