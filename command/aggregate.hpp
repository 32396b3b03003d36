#pragma once

// The command side's aggregate traits and the context a command's events carry.

#include <optional>
#include <string>
#include <variant>

#include "domain/decision.hpp"
#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "eventstore/repository.hpp"
#include "platform/core/trace.hpp"

// The command side's three aggregates as the repository sees them (eventstore/repository.hpp):
// each decider's Traits, and a command's context as its events' metadata. The Traits stay
// here rather than in domain/: they bind a decider to how the store keeps it (events decoded
// by type name, snapshot encodings), which is the command side's wiring, not the model's.
namespace ordo::command {

struct InventoryTraits {
    using State = domain::inventory::State;
    using Event = domain::inventory::Event;
    static std::optional<Event> decode(std::string_view t, const nlohmann::json& p) {
        return domain::inventory::decode(t, p);
    }
    static nlohmann::json encode_state(const State& s) {
        return domain::inventory::encode_state(s);
    }
    static std::optional<State> decode_state(const nlohmann::json& j) {
        return domain::inventory::decode_state(j);
    }
};
struct AccountTraits {
    using State = domain::payments::State;
    using Event = domain::payments::Event;
    static std::optional<Event> decode(std::string_view t, const nlohmann::json& p) {
        return domain::payments::decode(t, p);
    }
    static nlohmann::json encode_state(const State& s) { return domain::payments::encode_state(s); }
    static std::optional<State> decode_state(const nlohmann::json& j) {
        return domain::payments::decode_state(j);
    }
};
struct OrderTraits {
    using State = domain::orders::State;
    using Event = domain::orders::Event;
    static std::optional<Event> decode(std::string_view t, const nlohmann::json& p) {
        return domain::orders::decode(t, p);
    }
    static nlohmann::json encode_state(const State& s) { return domain::orders::encode_state(s); }
    static std::optional<State> decode_state(const nlohmann::json& j) {
        return domain::orders::decode_state(j);
    }
};

// Who asked, and under which trace: becomes every appended event's metadata.
struct CommandContext {
    platform::TraceContext trace;
    std::string correlation_id;
    std::string causation_id;
    std::string command_id;
    std::string actor;
};

// The event metadata of a command: who asked, under which trace.
inline eventstore::Metadata metadata_of(const CommandContext& context) {
    eventstore::Metadata m{
        {}, {}, context.correlation_id, context.causation_id, context.command_id, context.actor};
    eventstore::set_trace(m, context.trace);
    return m;
}

using eventstore::Executed;
using eventstore::Loaded;

// eventstore::execute with the command's context as the events' metadata.
template <class Traits, class Command, class Check>
Executed execute(eventstore::Session& session, const std::string& stream, const Command& command,
                 const CommandContext& context, Check&& precondition) {
    return eventstore::execute<Traits>(session, stream, command, metadata_of(context),
                                       std::forward<Check>(precondition));
}

template <class Traits, class Command>
Executed execute(eventstore::Session& session, const std::string& stream, const Command& command,
                 const CommandContext& context) {
    return eventstore::execute<Traits>(session, stream, command, metadata_of(context));
}

}  // namespace ordo::command
