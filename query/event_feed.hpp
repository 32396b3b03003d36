// The events API's pure parts: which events a reader selected, how an event is shown, and the
// server-sent-events framing of the live stream. No IO, so all of it is unit-tested alone.
#pragma once

#include <exception>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "eventstore/events.hpp"
#include "eventstore/upcasting.hpp"

namespace ordo::query {

// The categories and event types a reader asked for; an empty list selects everything.
struct EventSelection {
    std::vector<std::string> categories;
    std::vector<std::string> types;

    bool matches(const eventstore::RecordedEvent& event) const;
};

// The event in its current shape (see eventstore/upcasting.hpp), as every reader of the API
// gets it. An event newer than `upcasters` knows (written by a newer deploy), or one whose
// payload an upcaster cannot read, comes as stored (its schema_version says so) rather than
// stopping every stream that selects it; null upcasters: as stored.
// `unreadable`, when given, is told why an event came as stored (for the caller's log line
// and metric).
eventstore::RecordedEvent as_current(
    const eventstore::Upcasters* upcasters, eventstore::RecordedEvent event,
    const std::function<void(const eventstore::RecordedEvent&, const std::exception&)>& unreadable =
        {});

// One event as the events API shows it, in pages and in the stream alike: its position (the
// token clients resume from), stream, version, type, schema version, ids, payload, metadata
// and time.
nlohmann::json event_json(const eventstore::RecordedEvent& event);

// Server-sent events (the HTML standard's text/event-stream). Every message ends with a blank
// line; a JSON body has no line break (dump() escapes them), so it is one data line.
//
// An event: "id: <position>" and its JSON as data, the default message type. A client that
// reconnects sends the last id it saw as Last-Event-ID and resumes just after it.
std::string sse_event(const eventstore::RecordedEvent& event);
// A heartbeat: a comment, and the position the stream has read up to as its id. It
// dispatches no event, but a client's last event id moves on, so a filtered stream does not
// read again on reconnect what it has skipped already. Sent while nothing else is.
std::string sse_heartbeat(eventstore::Checkpoint position);
// The first message: how long a client waits before reconnecting, in milliseconds.
std::string sse_retry(int milliseconds);
// The last message of a stream the server ends (event type "end"): why, as a problem-like
// JSON object {type, detail}, so that the client can tell a slow reader from a stopping server.
std::string sse_end(std::string_view type, std::string_view detail);

}  // namespace ordo::query
