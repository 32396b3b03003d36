#pragma once

#include <optional>
#include <string>

#include "eventstore/event_store.hpp"
#include "platform/jetstream.hpp"

// How an event travels over NATS: the relay writes it, the projection runtime and the saga
// intake read it back. Both directions live here so that they cannot drift apart.
//
// Headers: Nats-Msg-Id (the event id, for JetStream deduplication), traceparent (when the
// event's metadata holds a valid trace context), ordo-stream, ordo-version, ordo-type,
// ordo-order-key (the event's checkpoint token), ordo-previous (the token of the
// partition's event before it; absent for the first), ordo-partition, ordo-recorded-at.
// The body is the whole RecordedEvent as JSON.
namespace ordo::eventstore {

// An event read back from a message, with its place in its partition's chain.
struct PublishedEvent {
    Checkpoint key;
    Checkpoint previous;  // {0, 0} for a partition's first event
    RecordedEvent event;
};

// "00-<trace>-<span>-01" when the metadata carries a valid trace context.
std::optional<std::string> traceparent_of(const Metadata& metadata);

platform::jetstream::Message to_message(const RecordedEvent& event, int partition,
                                        const std::string& previous);

// nullopt for anything that is not a message to_message wrote: a missing or malformed
// order key, a body that is not JSON or lacks a field or has one of the wrong type (numbers
// must be integers; the position not negative). Never throws.
std::optional<PublishedEvent> from_message(const platform::jetstream::Message& message);

}  // namespace ordo::eventstore
