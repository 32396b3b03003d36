#pragma once

// Schema evolution at the read boundary: the registry of event types' current schema
// versions and the pure steps that bring an older payload up to the current shape.

#include <functional>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "eventstore/events.hpp"

namespace ordo::eventstore {

// An event of a known type at a schema version this reader cannot read: newer than the
// current one it knows (written by a newer deploy), or below 1. Never guessed at: the reader
// fails, naming the event, and a projection parks it as a dead letter the normal way.
class UnknownSchemaVersion : public std::runtime_error {
   public:
    UnknownSchemaVersion(std::string event_id, std::string type, int version, int current);
    const std::string& type() const { return type_; }
    int version() const { return version_; }
    int current() const { return current_; }

   private:
    std::string type_;
    int version_;
    int current_;
};

// Which schema version of each event type writers write today, and for every older version
// the step to the next one. Upcasting runs the steps from an event's stored version up to
// the current one; the stored event is never rewritten: upcasting changes only the copy
// read. Types the registry does not know pass through unchanged, whatever their version (a
// reader knows only its own types; the relay and a webhook carry others unread).
//
// Steps are pure functions of the payload (no clock, no lookups), so every reader turns the
// same stored event into the same current shape. Registration is done once, by the
// composition root, before any read; after that the registry is only read, from any
// number of threads.
class Upcasters {
   public:
    // A payload of version v to the same event's payload of version v + 1.
    using Step = std::function<nlohmann::json(nlohmann::json)>;

    // Makes `type` known at version 1, if it is not known yet: events of a known type at a
    // version above its current one are refused instead of passed through.
    Upcasters& declare(std::string type);

    // Adds the step from `from_version` to `from_version + 1` of `type`, which becomes the
    // type's current version. Steps are added in order from version 1, so a chain never has
    // a gap or two steps from one version: std::invalid_argument when `from_version` is not
    // the type's current version (1 for a type not known yet) or `step` is empty.
    Upcasters& add(std::string type, int from_version, Step step);

    bool knows(std::string_view type) const;
    // The version writers of `type` write: 1 for a type without steps or not known.
    int current_version(std::string_view type) const;
    // Every known type with its current version, by name.
    std::map<std::string, int, std::less<>> versions() const;

    // `payload`, stored at `version` of `type`, in its current shape. Throws
    // UnknownSchemaVersion (naming `event_id`) for a known type at a version it cannot read.
    nlohmann::json upcast(std::string_view event_id, std::string_view type, int version,
                          nlohmann::json payload) const;
    // The event with its payload in the current shape and schema_version the current one.
    RecordedEvent upcast(RecordedEvent event) const;
    void upcast_all(std::vector<RecordedEvent>& events) const;

   private:
    std::map<std::string, std::vector<Step>, std::less<>> steps_;  // steps_[t][v - 1]: v -> v+1
};

// The events as `upcasters` read them, or unchanged when it is null (a reader of the stored
// shape, such as the relay).
inline std::vector<RecordedEvent> upcast_all(const Upcasters* upcasters,
                                             std::vector<RecordedEvent> events) {
    if (upcasters != nullptr) upcasters->upcast_all(events);
    return events;
}

}  // namespace ordo::eventstore
