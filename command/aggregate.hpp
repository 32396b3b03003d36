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

template <class Traits>
struct Loaded {
    typename Traits::State state{};
    std::int64_t version = 0;                    // 0: no such stream
    std::optional<eventstore::Checkpoint> last;  // of the newest event
    std::int64_t folded = 0;                     // events read past the snapshot
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

// A snapshot is taken every kSnapshotEvery events, in the transaction that crosses the
// mark, so loading a long stream reads at most that many events. A snapshot that does not
// decode (an older state format) is ignored and the stream is folded from the start.
// Format 2: inventory and account states hold a window of recent settlements instead of
// every settled order; a format-1 snapshot cannot tell their order, so it is not used.
inline constexpr std::int64_t kSnapshotEvery = 100;
inline constexpr int kSnapshotFormat = 2;

// Locks the stream's row for the rest of the transaction and folds its state.
template <class Traits>
Loaded<Traits> load(pqxx::transaction_base& txn, const std::string& stream) {
    constexpr std::size_t kPage = 1000;
    Loaded<Traits> loaded;
    // One round trip: lock the stream's row (so commands on one hot stream queue instead of
    // deciding on stale state and burning retries) and read its snapshot. The append still
    // checks the expected version; only the first commands on a new stream can still race.
    auto snapshot = txn.exec_params(
        "WITH locked AS (SELECT 1 FROM ordo.streams WHERE stream_id = $1 FOR UPDATE) "
        "SELECT s.stream_version, s.state::text, (SELECT count(*) FROM locked) "
        "FROM (SELECT 1) AS one LEFT JOIN ordo.snapshots AS s "
        "ON s.stream_id = $1 AND s.schema_version = $2",
        stream, kSnapshotFormat);
    if (!snapshot[0][0].is_null()) {
        if (auto state = Traits::decode_state(nlohmann::json::parse(snapshot[0][1].c_str()))) {
            loaded.state = std::move(*state);
            loaded.version = snapshot[0][0].template as<std::int64_t>();
        }
    }
    const auto from_snapshot = loaded.version;
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
            ++loaded.folded;
        }
        if (page.size() < kPage) break;
    }
    if (!loaded.last && from_snapshot > 0) {
        // Nothing after the snapshot: the position is that of the snapshot's last event.
        auto row = txn.exec_params1(
            "SELECT transaction_id::text, global_position FROM ordo.events "
            "WHERE stream_id = $1 AND stream_version = $2",
            stream, from_snapshot);
        loaded.last =
            eventstore::Checkpoint{std::stoull(row[0].c_str()), row[1].template as<std::int64_t>()};
    }
    return loaded;
}

template <class Traits>
void save_snapshot(pqxx::transaction_base& txn, const std::string& stream,
                   const typename Traits::State& state, std::int64_t version) {
    txn.exec_params(
        "INSERT INTO ordo.snapshots (stream_id, stream_version, schema_version, state) "
        "VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (stream_id) DO UPDATE "
        "SET stream_version = EXCLUDED.stream_version, schema_version = EXCLUDED.schema_version, "
        "state = EXCLUDED.state, taken_at = now() "
        "WHERE ordo.snapshots.stream_version < EXCLUDED.stream_version",
        stream, version, kSnapshotFormat, Traits::encode_state(state).dump());
}

// Decides `command` against the stream's current state and appends the result with the
// version it was decided on; a concurrent writer (only possible on a new stream) makes the
// append throw ConcurrencyConflict, and the caller runs the whole thing again.
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
        batch.push_back(
            {platform::new_uuid(),
             std::string{event_type(event)},
             encode_payload(event),
             {context.trace.trace_id_hex(), context.trace.span_id_hex(), context.correlation_id,
              context.causation_id, context.command_id, context.actor}});
    }
    auto expected = loaded.version == 0 ? eventstore::ExpectedVersion::no_stream()
                                        : eventstore::ExpectedVersion::exact(loaded.version);
    auto appended = eventstore::EventStore::append(txn, stream, expected, batch);
    // Every kSnapshotEvery versions; and at once when this load read as many events past
    // its snapshot (none usable: a stream of an older snapshot format), so that a long
    // stream is folded from its start once, not on every command until the next mark.
    if (appended.last_version / kSnapshotEvery > loaded.version / kSnapshotEvery ||
        loaded.folded >= kSnapshotEvery) {
        auto state = std::move(loaded.state);
        for (const auto& event : events) state = evolve(std::move(state), event);
        save_snapshot<Traits>(txn, stream, state, appended.last_version);
    }
    result.version = appended.last_version;
    result.checkpoint = appended.checkpoint;
    result.appended = true;
    return result;
}

template <class Traits, class Command>
Executed execute(pqxx::transaction_base& txn, const std::string& stream, const Command& command,
                 const CommandContext& context) {
    return execute<Traits>(txn, stream, command, context, [](const Loaded<Traits>&) {
        return std::optional<domain::Rejection>{};
    });
}

}  // namespace ordo::command
