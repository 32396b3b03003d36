#pragma once

// The event-sourced repository: load a decider's state from its stream (snapshot, then
// events), decide a command, append what was decided at the version it was decided on, and
// keep snapshots. Generic over a decider's Traits, written once for every aggregate.

#include <any>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <variant>
#include <vector>

#include "domain/decision.hpp"
#include "domain/schema.hpp"
#include "eventstore/store.hpp"
#include "platform/core/trace.hpp"

// The decider's functions (evolve, decide, event_type, encode_payload) are found by
// argument-dependent lookup in its domain namespace; Traits supplies what has no argument
// to look up by: State, Event, decode(type, payload), encode_state, decode_state.
namespace ordo::eventstore {

template <class Traits>
struct Loaded {
    typename Traits::State state{};
    std::int64_t version = 0;        // 0: no such stream
    std::optional<Checkpoint> last;  // of the newest event
    std::int64_t folded = 0;  // events read past where the load started (snapshot, kept fold)
    std::string last_id;      // of the newest event, when read (not from a snapshot)
};

struct Executed {
    std::optional<domain::Rejection> rejection;
    std::int64_t version = 0;  // the stream's version afterwards
    std::optional<Checkpoint> checkpoint;
    bool appended = false;
};

// An event the decider cannot read: a bug or a newer writer, never the client's fault.
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

// Events are read a page at a time: bounded memory per read, whatever the stream's length.
inline constexpr std::size_t kLoadPage = 1000;

// A loaded state as the fold to leave for the next command on its stream
// (Session::leave_fold).
template <class Traits>
std::shared_ptr<const KnownFold> known_fold_of(Loaded<Traits> loaded) {
    auto version = loaded.version;
    auto id = loaded.last_id;
    return std::make_shared<const KnownFold>(
        KnownFold{version, std::move(id), std::any{std::move(loaded)}});
}

// Folds the stream's state, read through session.lock_and_read: a locking session holds the
// stream until it ends; an unlocked one (command::Executor::Options::unlocked_first) holds
// nothing, and the append's expected version catches a writer in between. It starts from the
// fold an earlier command of this process left (Session::known_fold) when the session keeps
// them, and only reads what came after it; else from the snapshot. An event that does not
// decode throws UnreadableEvent naming its id, type and stream.
template <class Traits>
Loaded<Traits> load(Session& session, const std::string& stream) {
    Loaded<Traits> loaded;
    auto fold = [&](const std::vector<RecordedEvent>& events) {
        for (const auto& recorded : events) {
            auto event = Traits::decode(recorded.type, recorded.payload);
            if (!event) {
                throw UnreadableEvent("cannot read event " + recorded.event_id + " (" +
                                      recorded.type + ") of " + stream);
            }
            loaded.state = evolve(std::move(loaded.state), *event);
            loaded.version = recorded.version;
            loaded.last = recorded.checkpoint();
            loaded.last_id = recorded.event_id;
            ++loaded.folded;
        }
    };
    const auto kept = session.known_fold(stream);
    const auto* known = kept ? std::any_cast<Loaded<Traits>>(&kept->state) : nullptr;
    // In a locking session the lock makes commands on one hot stream queue instead of
    // deciding on stale state and burning retries; the append still checks the expected
    // version. The lock (if any), the snapshot and the first page come in one round trip.
    auto head =
        session.lock_and_read(stream, kSnapshotFormat, kLoadPage, known ? known->version : 0);
    if (known && !head.snapshot && (!head.known_at || head.known_id != kept->event_id)) {
        // Not the event the kept fold ends with, or none: not this stream's history as stored.
        known = nullptr;
        head = session.lock_and_read(stream, kSnapshotFormat, kLoadPage, 0);
    }
    bool head_follows = !head.snapshot;  // the head's events continue the loaded state
    if (head.snapshot) {
        if (auto state = Traits::decode_state(head.snapshot->state)) {
            loaded.state = std::move(*state);
            loaded.version = head.snapshot->version;
            loaded.last = head.snapshot_at;
            head_follows = true;
        }
    } else if (known) {
        loaded.state = known->state;
        loaded.version = known->version;
        loaded.last = head.known_at;
        loaded.last_id = head.known_id;
    }
    // The head's events follow the snapshot; one that does not decode is read from the start.
    bool more = !head_follows || head.events.size() >= kLoadPage;
    if (head_follows) fold(head.events);
    // The rest: events past a full page, and those a writer committed while this waited for
    // the lock (the head's read stops short of the version then).
    while (more || loaded.version < head.version) {
        auto page = session.read_stream(stream, loaded.version + 1, kLoadPage);
        fold(page);
        more = page.size() >= kLoadPage;
        if (page.empty()) break;
    }
    return loaded;
}

// Decides `command` against the stream's current state and appends the result with the
// version it was decided on; a concurrent writer (on a new stream, or while an unlocked
// session decided) makes the
// append throw ConcurrencyConflict, and the caller runs the whole session again.
// `precondition` may refuse on the loaded stream before the decider sees the command.
template <class Traits, class Command, class Check>
Executed execute(Session& session, const std::string& stream, const Command& command,
                 const Metadata& metadata, Check&& precondition) {
    auto loaded = load<Traits>(session, stream);
    Executed result{std::nullopt, loaded.version, loaded.last, false};
    // The fold as loaded, for the next command, when this one appends nothing (kept only once
    // the session commits; a session that keeps none ignores it).
    const auto keep_loaded = [&] {
        if (loaded.folded > 0) session.leave_fold(stream, known_fold_of(Loaded<Traits>{loaded}));
    };
    if (auto refused = precondition(loaded)) {
        result.rejection = std::move(*refused);
        keep_loaded();
        return result;
    }
    auto decision = decide(loaded.state, command);
    if (auto* rejection = std::get_if<domain::Rejection>(&decision)) {
        result.rejection = std::move(*rejection);
        keep_loaded();
        return result;
    }
    const auto& events = std::get<std::vector<typename Traits::Event>>(decision);
    if (events.empty()) {  // already done: nothing to append
        keep_loaded();
        return result;
    }
    std::vector<NewEvent> batch;
    batch.reserve(events.size());
    for (const auto& event : events) {
        batch.push_back({platform::new_uuid(), std::string{event_type(event)},
                         encode_payload(event), metadata, domain::schema_version(event)});
    }
    auto expected =
        loaded.version == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exact(loaded.version);
    auto appended = session.append(stream, expected, batch);
    auto state = std::move(loaded.state);
    for (const auto& event : events) state = evolve(std::move(state), event);
    // Every kSnapshotEvery versions; and at once when this load read as many events past
    // where it started (no usable snapshot: a stream of an older snapshot format), so that a
    // long stream is folded from its start once, not on every command until the next mark.
    if (appended.last_version / kSnapshotEvery > loaded.version / kSnapshotEvery ||
        loaded.folded >= kSnapshotEvery) {
        session.save_snapshot(stream, {appended.last_version, Traits::encode_state(state)},
                              kSnapshotFormat);
    }
    session.leave_fold(
        stream, known_fold_of(Loaded<Traits>{std::move(state), appended.last_version,
                                             appended.checkpoint, 0, batch.back().event_id}));
    result.version = appended.last_version;
    result.checkpoint = appended.checkpoint;
    result.appended = true;
    return result;
}

template <class Traits, class Command>
Executed execute(Session& session, const std::string& stream, const Command& command,
                 const Metadata& metadata) {
    return execute<Traits>(session, stream, command, metadata, [](const Loaded<Traits>&) {
        return std::optional<domain::Rejection>{};
    });
}

}  // namespace ordo::eventstore
