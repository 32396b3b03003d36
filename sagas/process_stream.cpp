// The fold of a saga process stream, paging through the store's reader.
#include "sagas/process_stream.hpp"

#include "eventstore/repository.hpp"
#include "platform/core/errors.hpp"

namespace ordo::sagas {

void LoadedProcess::apply(const Event& event, const std::string& event_id,
                          const eventstore::Metadata& metadata, std::int64_t at_version) {
    if (version == 0) origin = metadata;
    if (const auto* s = std::get_if<StepScheduled>(&event)) scheduled_by[s->name] = event_id;
    state = evolve(std::move(state), event);
    version = at_version;
    last_event_id = event_id;
}

void fold_recorded(LoadedProcess& loaded, const eventstore::RecordedEvent& e,
                   Unreadable unreadable) {
    if (auto event = decode(e.type, e.payload)) {
        loaded.apply(*event, e.event_id, e.metadata, e.version);
    } else if (unreadable == Unreadable::kThrow) {
        throw platform::InvalidInput("undecodable event " + e.type + " at " + e.stream_id + "@" +
                                     std::to_string(e.version));
    } else {
        loaded.version = e.version;
    }
}

LoadedProcess load_process(eventstore::EventReader& reader, const std::string& stream,
                           const LoadOptions& options, LoadedProcess from) {
    LoadedProcess loaded = std::move(from);
    for (;;) {
        auto page = reader.read_stream(stream, loaded.version + 1, eventstore::kLoadPage);
        for (const auto& e : page) {
            if (e.version > options.up_to) return loaded;
            fold_recorded(loaded, e, options.unreadable);
        }
        if (page.size() < eventstore::kLoadPage) return loaded;
    }
}

}  // namespace ordo::sagas
