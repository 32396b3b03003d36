#pragma once

// The wire form of a recorded event on NATS: the one encoder (the relay) and the one decoder
// (the projection runtime's live path), in plain strings so that neither side needs NATS here.

#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "eventstore/events.hpp"

// A message is subject + headers + body:
//   subject  <prefix>.<partition>.<category>
//   headers  Nats-Msg-Id (the event id, for JetStream deduplication), traceparent (when the
//            event's metadata holds a valid trace context), ordo-stream, ordo-version,
//            ordo-type, ordo-order-key (the event's checkpoint token), ordo-previous (the
//            token of the partition's event before it; absent for the first: cnats cannot
//            read an empty value back), ordo-partition, ordo-recorded-at, ordo-shard (the
//            shard whose commit order the keys are in; absent for shard 0)
//   body     the whole RecordedEvent as JSON
// The headers repeat what the body says so that NATS tools and consumers can route and
// deduplicate without parsing it; the decoder refuses a message whose headers and body
// disagree, so no consumer can see one event under two descriptions.
namespace ordo::eventstore {

// An event as it travels, with its place in its partition's chain.
struct PublishedEvent {
    Checkpoint key;       // the event's own order key: event.checkpoint()
    Checkpoint previous;  // {0, 0} for a partition's first event
    RecordedEvent event;
    // The shard whose commit order `key` and `previous` are in (the publishing relay's): a
    // consumer compares them only with a checkpoint of the same shard, since a partition that
    // moved between shards continues in the other shard's order.
    int shard = 0;
};

// Header names are matched without regard to case on decoding (NATS clients may fold them).
struct WireMessage {
    std::string subject;
    std::map<std::string, std::string> headers;
    std::string body;
};

// Why a message is not one the relay wrote, in words fit for a log line.
struct WireRefusal {
    std::string reason;
};

// "00-<trace>-<span>-01" when the metadata carries a valid trace context.
std::optional<std::string> traceparent_of(const Metadata& metadata);

// `previous` is the order key of the event published before `event` in `partition`, or
// {0, 0} when there is none (the header is then left empty, which NATS does not send).
WireMessage encode_wire(const RecordedEvent& event, std::string_view subject_prefix, int partition,
                        Checkpoint previous, int shard = 0);

// The event encode_wire wrote under `subject_prefix`, or why this is not such a message:
// a subject that is not <prefix>.<partition>.<category>, a missing, malformed or
// contradicting header, a body that is not JSON or lacks a field or has one of the wrong
// type (numbers must be integers; the position not negative), a predecessor that is not
// before the event. Never throws.
std::variant<PublishedEvent, WireRefusal> decode_wire(
    std::string_view subject_prefix, std::string_view subject,
    const std::map<std::string, std::string>& headers, std::string_view body);

}  // namespace ordo::eventstore
