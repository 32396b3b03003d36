#pragma once

// The event store's vocabulary, shared by every implementation of the store: expected
// versions, events new and recorded, checkpoints, append results, and the append's refusals.

#include <compare>
#include <cstdint>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/trace.hpp"

namespace ordo::eventstore {

// What the appender believes the stream's version to be.
class ExpectedVersion {
   public:
    static ExpectedVersion any() { return ExpectedVersion{-1}; }
    static ExpectedVersion no_stream() { return ExpectedVersion{0}; }
    static ExpectedVersion exact(std::int64_t version);  // version >= 1
    bool is_any() const { return value_ < 0; }
    // -1 any, 0 no stream, n exactly n: the encoding the append function takes.
    std::int64_t encoded() const { return value_; }
    std::string to_string() const;

   private:
    explicit ExpectedVersion(std::int64_t v) : value_{v} {}
    std::int64_t value_;
};

struct Metadata {
    std::string trace_id;  // W3C trace context of the writer's span, in lower-case hex
    std::string span_id;
    std::string correlation_id;
    std::string causation_id;
    std::string command_id;
    std::string actor;
    std::string trace_flags = "01";  // two hex digits; stored only when not "01"
    std::string tracestate;          // the W3C tracestate that came along; stored when any

    nlohmann::json to_json() const;
    static Metadata from_json(const nlohmann::json& j);
};

// The one mapping between a trace context and event metadata, both ways, flags and
// tracestate kept. trace_of is nullopt when the metadata holds no valid trace (ids missing or
// malformed); readers then start a trace of their own.
std::optional<platform::TraceContext> trace_of(const Metadata& metadata);
void set_trace(Metadata& metadata, const platform::TraceContext& trace);

struct NewEvent {
    std::string event_id;  // UUID; the idempotency key of the event
    std::string type;
    nlohmann::json payload;
    Metadata metadata;
    int schema_version = 1;
};

// A position in the global commit order: (transaction id, global position). Everything a
// subscriber has processed is at or below its checkpoint.
struct Checkpoint {
    std::uint64_t transaction_id = 0;
    std::int64_t position = 0;

    // Opaque to clients: the consistency token of the API.
    std::string token() const;
    static std::optional<Checkpoint> parse_token(std::string_view token);
    auto operator<=>(const Checkpoint&) const = default;
};

// What a store (or one shard) holds after a checkpoint, below its horizon.
struct ChangedPartitions {
    // The partitions that have events after the checkpoint.
    std::set<int> partitions;
    // The newest event after the checkpoint; nullopt when there is none (a reader at the
    // checkpoint is at the head).
    std::optional<Checkpoint> head;
    // False when there were more events than were looked at, or they could not be read:
    // `partitions` may then miss some.
    bool complete = true;
};

// A consistency token of a sharded store: a checkpoint and the shard whose commit order it is
// in, "<shard>:<transaction id>.<position>". A token without a shard, all an unsharded store
// gives, is shard 0's.
struct ShardToken {
    int shard = 0;
    Checkpoint at;

    std::string token() const;
    static std::optional<ShardToken> parse(std::string_view token);
    bool operator==(const ShardToken&) const = default;
};

// A transaction id in decimal, as PostgreSQL prints an xid8 and a checkpoint token carries it:
// ASCII digits only (no sign, no blanks), at most 2^64 - 1. nullopt for anything else, so a
// malformed or overflowing id is refused, never wrapped or cut short.
std::optional<std::uint64_t> parse_transaction_id(std::string_view text);

// The same for the text of an xid8 column, where anything but a transaction id is a broken
// invariant of the database: throws std::runtime_error naming the text.
std::uint64_t transaction_id_from_xid8(std::string_view text);

struct RecordedEvent {
    std::int64_t position;
    std::uint64_t transaction_id;
    std::string stream_id;
    std::string category;
    std::int64_t version;
    std::string event_id;
    std::string type;
    int schema_version;
    nlohmann::json payload;
    Metadata metadata;
    std::string recorded_at;  // RFC 3339, UTC
    // A copy a partition move brought to this shard (migration 0017): its original was
    // published where it was appended. Read by read_all only; false everywhere else.
    bool moved = false;

    Checkpoint checkpoint() const { return {transaction_id, position}; }
};

struct AppendResult {
    std::int64_t first_version;
    std::int64_t last_version;  // the stream's version after the append
    std::vector<std::int64_t> positions;
    Checkpoint checkpoint;  // of the last event
    bool replayed;          // the events were already stored: nothing was written
};

// The stream's version was not what the appender expected.
class ConcurrencyConflict : public std::runtime_error {
   public:
    ConcurrencyConflict(std::string stream, ExpectedVersion expected, std::int64_t actual);
    const std::string& stream() const { return stream_; }
    std::int64_t actual_version() const { return actual_; }

   private:
    std::string stream_;
    std::int64_t actual_;
};

// The stream's partition takes no writes on this shard: the shard map gives it to another,
// or a move of it is under way (migration 0017). Nothing was written; the caller reads the
// map again, and retries on the shard it names or later.
// Unavailable: the request answers 503 with Retry-After, and a saga step tries again.
class PartitionFenced : public platform::Unavailable {
   public:
    using platform::Unavailable::Unavailable;
};

// An event id that is already stored with other content or at another place.
class EventIdReused : public std::runtime_error {
   public:
    explicit EventIdReused(std::string event_id);
    const std::string& event_id() const { return event_id_; }

   private:
    std::string event_id_;
};

// Stream ids are "<category>-<id>"; the category is everything before the first '-'.
bool is_valid_stream_id(std::string_view stream);
std::string category_of(std::string_view stream);

// Refuses with platform::InvalidInput what no store accepts in an append: a bad stream id, an
// empty or oversized batch, event ids that are not UUIDs or repeat, bad event types. Every
// Store's append calls it first, so both implementations refuse with the same texts.
void check_append(const std::string& stream, const std::vector<NewEvent>& events);

}  // namespace ordo::eventstore
