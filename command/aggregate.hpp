#pragma once

#include <optional>
#include <string>
#include <variant>

#include "domain/decision.hpp"
#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "eventstore/event_store.hpp"
#include "platform/trace.hpp"

// Load → decide → append for any decider aggregate. The aggregate's functions are found
// by argument-dependent lookup in its domain namespace; Traits supplies what has no
// argument to look up by (decoding).
namespace ordo::command {

struct InventoryTraits {
    using State = domain::inventory::State;
    using Event = domain::inventory::Event;
    static std::optional<Event> decode(std::string_view t, const nlohmann::json& p) {
        return domain::inventory::decode(t, p);
    }
};
struct AccountTraits {
    using State = domain::payments::State;
    using Event = domain::payments::Event;
    static std::optional<Event> decode(std::string_view t, const nlohmann::json& p) {
        return domain::payments::decode(t, p);
    }
};
struct OrderTraits {
    using State = domain::orders::State;
    using Event = domain::orders::Event;
    static std::optional<Event> decode(std::string_view t, const nlohmann::json& p) {
        return domain::orders::decode(t, p);
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

template <class Traits>
struct Loaded {
    typename Traits::State state{};
    std::int64_t version = 0;                   // 0: no such stream
    std::optional<eventstore::Checkpoint> last;  // of the newest event
};

struct Executed {
    std::optional<domain::Rejection> rejection;
    std::int64_t version = 0;  // the stream's version afterwards
    std::optional<eventstore::Checkpoint> checkpoint;
    bool appended = false;
};

// An event the aggregate cannot read: a bug or a newer writer, never the client's fault.
class UnreadableEvent : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

template <class Traits>
Loaded<Traits> load(pqxx::transaction_base& txn, const std::string& stream) {
    constexpr std::size_t kPage = 1000;
    Loaded<Traits> loaded;
    for (;;) {
        auto page = eventstore::EventStore::read_stream(txn, stream, loaded.version + 1, kPage);
        for (const auto& recorded : page) {
            auto event = Traits::decode(recorded.type, recorded.payload);
            if (!event) {
                throw UnreadableEvent("cannot read event " + recorded.event_id + " (" +
                                      recorded.type + ") of " + stream);
            }
            loaded.state = evolve(std::move(loaded.state), *event);
            loaded.version = recorded.version;
            loaded.last = recorded.checkpoint();
        }
        if (page.size() < kPage) return loaded;
    }
}

// Decides `command` against the stream's current state and appends the result with the
// version it was decided on; a concurrent writer makes the append throw
// ConcurrencyConflict, and the caller runs the whole thing again.
template <class Traits, class Command, class Check>
Executed execute(pqxx::transaction_base& txn, const std::string& stream, const Command& command,
                 const CommandContext& context, Check&& precondition) {
    auto loaded = load<Traits>(txn, stream);
    Executed result{std::nullopt, loaded.version, loaded.last, false};
    if (auto refused = precondition(loaded)) {
        result.rejection = std::move(*refused);
        return result;
    }
    auto decision = decide(loaded.state, command);
    if (auto* rejection = std::get_if<domain::Rejection>(&decision)) {
        result.rejection = std::move(*rejection);
        return result;
    }
    const auto& events = std::get<std::vector<typename Traits::Event>>(decision);
    if (events.empty()) return result;  // already done: nothing to append
    std::vector<eventstore::NewEvent> batch;
    batch.reserve(events.size());
    for (const auto& event : events) {
        batch.push_back({platform::new_uuid(), std::string{event_type(event)},
                         encode_payload(event),
                         {context.trace.trace_id_hex(), context.trace.span_id_hex(),
                          context.correlation_id, context.causation_id, context.command_id,
                          context.actor}});
    }
    auto expected = loaded.version == 0 ? eventstore::ExpectedVersion::no_stream()
                                        : eventstore::ExpectedVersion::exact(loaded.version);
    auto appended = eventstore::EventStore::append(txn, stream, expected, batch);
    result.version = appended.last_version;
    result.checkpoint = appended.checkpoint;
    result.appended = true;
    return result;
}

template <class Traits, class Command>
Executed execute(pqxx::transaction_base& txn, const std::string& stream, const Command& command,
                 const CommandContext& context) {
    return execute<Traits>(txn, stream, command, context,
                           [](const Loaded<Traits>&) { return std::optional<domain::Rejection>{}; });
}

}  // namespace ordo::command
