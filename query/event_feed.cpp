#include "query/event_feed.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

namespace ordo::query {
namespace {

bool selected(const std::vector<std::string>& names, const std::string& name) {
    return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

std::string dump(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

eventstore::RecordedEvent as_current(const eventstore::Upcasters* upcasters,
                                     eventstore::RecordedEvent event,
                                     const std::function<void(const eventstore::RecordedEvent&,
                                                              const std::exception&)>& unreadable) {
    if (upcasters == nullptr) return event;
    try {
        return upcasters->upcast(event);
    } catch (const std::exception& e) {
        // A version newer than known, or a payload an upcaster cannot read: as stored.
        if (unreadable) unreadable(event, e);
        return event;
    }
}

bool EventSelection::matches(const eventstore::RecordedEvent& event) const {
    return selected(categories, event.category) && selected(types, event.type);
}

nlohmann::json event_json(const eventstore::RecordedEvent& event) {
    return {{"position", event.checkpoint().token()},
            {"stream", event.stream_id},
            {"category", event.category},
            {"version", event.version},
            {"type", event.type},
            {"schema_version", event.schema_version},
            {"event_id", event.event_id},
            {"payload", event.payload},
            {"metadata", event.metadata.to_json()},
            {"recorded_at", event.recorded_at}};
}

std::string sse_event(const eventstore::RecordedEvent& event) {
    return "id: " + event.checkpoint().token() + "\ndata: " + dump(event_json(event)) + "\n\n";
}

std::string sse_heartbeat(eventstore::Checkpoint position) {
    return ": heartbeat\nid: " + position.token() + "\n\n";
}

std::string sse_retry(int milliseconds) {
    return "retry: " + std::to_string(milliseconds) + "\n\n";
}

std::string sse_end(std::string_view type, std::string_view detail) {
    return "event: end\ndata: " + dump({{"type", type}, {"detail", detail}}) + "\n\n";
}

}  // namespace ordo::query
