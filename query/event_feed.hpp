// The events API's pure parts: which events a reader selected, where a reader is over the
// store's shards, how a page of several shards is put together, how an event is shown, and
// the server-sent-events framing of the live stream. No IO, so all of it is unit-tested alone.
#pragma once

#include <cstddef>
#include <exception>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "eventstore/events.hpp"
#include "eventstore/shard_map.hpp"
#include "eventstore/upcasting.hpp"

namespace ordo::query {

// The categories and event types a reader asked for; an empty list selects everything.
struct EventSelection {
    std::vector<std::string> categories;
    std::vector<std::string> types;

    bool matches(const eventstore::RecordedEvent& event) const;
};

// Where a reader of the events API is: a checkpoint in the commit order of each shard it
// reads (a shard's order is its own; there is none across shards). Over one store (shards
// {0}) the token is that checkpoint's, "<transaction id>.<position>", as before shards. Over
// several it is "<shard>:<checkpoint>" for each, comma-separated, in shard order
// ("0:812.40,1:77.9"). A token may leave shards out (they start at the beginning), and a
// plain checkpoint is shard 0's: a client that read an unsharded store goes on after the
// store is sharded (shard 0 is the store it read).
class FeedPosition {
   public:
    // Room for a checkpoint of each of the most shards a map may have (56 bytes each).
    static constexpr std::size_t kMaxTokenSize = std::size_t{eventstore::kMaxShards} * 56;

    // Every one of `shards` (ids, each once) at the beginning.
    explicit FeedPosition(std::vector<int> shards);
    // nullopt for a token that is malformed, names a shard twice or one not in `shards`.
    static std::optional<FeedPosition> parse(std::string_view token, std::vector<int> shards);
    // The shards a well-formed token names, in its order (a plain checkpoint: shard 0's);
    // nullopt for a malformed one, or one that names a shard twice or one no map may have.
    static std::optional<std::vector<int>> named_shards(std::string_view token);

    const std::vector<int>& shards() const { return shards_; }
    // The checkpoint of the `index`th shard (shards()[index]).
    eventstore::Checkpoint at(std::size_t index) const { return at_.at(index); }
    // The same place over `shards`, which must hold every one of shards() (invalid_argument
    // otherwise): a shard this position does not name is at its beginning.
    FeedPosition over(std::vector<int> shards) const;
    // Moves the `index`th shard's checkpoint to `to`, if that is further.
    void advance(std::size_t index, eventstore::Checkpoint to);
    std::string token() const;
    bool operator==(const FeedPosition&) const = default;

   private:
    std::vector<int> shards_;
    std::vector<eventstore::Checkpoint> at_;
};

// One shard's read for a page: its selected events after the reader's checkpoint, in its
// commit order, and how far the read looked (EventStore::read_selected's read_to).
struct ShardRead {
    std::vector<eventstore::RecordedEvent> events;
    eventstore::Checkpoint read_to;
};

// A page over shards: the events with the reader's position after each, and the position to
// go on from.
struct FeedPage {
    std::vector<std::pair<eventstore::RecordedEvent, FeedPosition>> events;
    FeedPosition next;
};

// Puts `reads` (one per shard of `from`, in its order) into a page of at most `limit`
// events: the earliest recorded first (ties by shard, then commit order), each shard's in
// its own commit order. A shard whose events all made the page goes on from its read_to; one
// whose did not, from the last of its events taken, so the next page starts with the rest.
FeedPage merge_reads(const FeedPosition& from, std::vector<ShardRead> reads, std::size_t limit);

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

// One event as the events API shows it, in pages and in the stream alike: `position` (the
// reader's position just after it, the token clients resume from: over one store, the
// event's own checkpoint), stream, version, type, schema version, ids, payload, metadata and
// time.
nlohmann::json event_json(const eventstore::RecordedEvent& event, const FeedPosition& position);

// Server-sent events (the HTML standard's text/event-stream). Every message ends with a blank
// line; a JSON body has no line break (dump() escapes them), so it is one data line.
//
// An event: "id: <position>" and its JSON as data, the default message type. A client that
// reconnects sends the last id it saw as Last-Event-ID and resumes just after it.
std::string sse_event(const eventstore::RecordedEvent& event, const FeedPosition& position);
// The same in two steps, for an event sent to many readers, each at its own position: its
// JSON without the position, made once (sse_body), then each reader's message of it. The
// data is event_json's, its position first.
std::string sse_body(const eventstore::RecordedEvent& event);
std::string sse_event(std::string_view body, const FeedPosition& position);
// A heartbeat: a comment, and the position the stream has read up to as its id. It
// dispatches no event, but a client's last event id moves on, so a filtered stream does not
// read again on reconnect what it has skipped already. Sent while nothing else is.
std::string sse_heartbeat(const FeedPosition& position);
// The first message: how long a client waits before reconnecting, in milliseconds.
std::string sse_retry(int milliseconds);
// The last message of a stream the server ends (event type "end"): why, as a problem-like
// JSON object {type, detail}, so that the client can tell a slow reader from a stopping server.
std::string sse_end(std::string_view type, std::string_view detail);

}  // namespace ordo::query
