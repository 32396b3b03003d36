#pragma once

// A process stream read back: the fold of a saga process's events into its state, plus what
// the process's next events carry on (origin metadata, causation, the event that scheduled
// each step). Written once for the runner and the saga view.

#include <cstdint>
#include <limits>
#include <map>
#include <string>

#include "eventstore/store.hpp"
#include "sagas/process.hpp"

namespace ordo::sagas {

// A process as loaded. `version` is the version of the last event folded (0: no stream).
struct LoadedProcess {
    State state;
    std::int64_t version = 0;
    eventstore::Metadata origin;                      // of its first event: trace, correlation
    std::string last_event_id;                        // causation for what comes next
    std::map<std::string, std::string> scheduled_by;  // step -> id of its StepScheduled event

    // Folds one more event, stored at `version` with `event_id` and `metadata`: the loader
    // and a writer that appended the event both keep the record this way.
    void apply(const Event& event, const std::string& event_id,
               const eventstore::Metadata& metadata, std::int64_t version);
};

// What to do with an event the process model cannot decode: the runner refuses to run a
// process it cannot read (a bug or a newer writer, for an operator); the saga view shows
// what it can.
enum class Unreadable { kThrow, kSkip };

struct LoadOptions {
    // Fold no event past this version (the view follows the log up to the event it applies).
    std::int64_t up_to = std::numeric_limits<std::int64_t>::max();
    Unreadable unreadable = Unreadable::kThrow;
};

// Folds `stream` on from `from` (a fold of its first events; empty: from its first event),
// eventstore::kLoadPage events per read, so memory stays bounded whatever the stream's
// length. Unreadable::kThrow throws platform::InvalidInput naming the event; with kSkip an
// unreadable event still counts in `version`.
LoadedProcess load_process(eventstore::EventReader& reader, const std::string& stream,
                           const LoadOptions& options = {}, LoadedProcess from = {});

// Folds `recorded`, the event that follows `loaded` in its stream, as load_process does.
void fold_recorded(LoadedProcess& loaded, const eventstore::RecordedEvent& recorded,
                   Unreadable unreadable);

}  // namespace ordo::sagas
