#pragma once

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/connection>
#include <pqxx/transaction_base>

namespace ordo::platform::pg {
class Pool;
}

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
    std::string trace_id;
    std::string span_id;
    std::string correlation_id;
    std::string causation_id;
    std::string command_id;
    std::string actor;

    nlohmann::json to_json() const;
    static Metadata from_json(const nlohmann::json& j);
};

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

// The PostgreSQL event store. Appends to one stream serialize on that stream's row; appends
// to different streams run in parallel. Every append is durable and idempotent by event
// id. Thread-safe: all state lives in the database and the pool.
class AppendNotifier;

class EventStore {
   public:
    // `notifier` (optional) is signalled after each append this class commits; callers that
    // append in their own transaction signal it themselves after their commit.
    explicit EventStore(platform::pg::Pool& pool, AppendNotifier* notifier = nullptr)
        : pool_{pool}, notifier_{notifier} {}

    // Registers this class's prepared statements; add it to the pool's preparers.
    static void prepare(pqxx::connection& conn);

    // Appends in a transaction of its own. Throws ConcurrencyConflict, EventIdReused,
    // platform::InvalidInput (empty batch, bad ids) or platform::Unavailable.
    AppendResult append(const std::string& stream, ExpectedVersion expected,
                        const std::vector<NewEvent>& events);

    // Appends inside the caller's transaction (which must be on a prepared connection),
    // so other writes — an idempotency record, a checkpoint — commit atomically with it.
    static AppendResult append(pqxx::transaction_base& txn, const std::string& stream,
                               ExpectedVersion expected, const std::vector<NewEvent>& events);

    // Events of one stream with version >= from_version, in version order.
    std::vector<RecordedEvent> read_stream(const std::string& stream, std::int64_t from_version,
                                           std::size_t max_count);
    static std::vector<RecordedEvent> read_stream(pqxx::transaction_base& txn,
                                                  const std::string& stream,
                                                  std::int64_t from_version, std::size_t max_count);

    // Events committed after `after` in (transaction id, position) order, only below the
    // horizon of transactions still running, so a later call never finds an event that
    // sorts before one already returned.
    std::vector<RecordedEvent> read_all(Checkpoint after, std::size_t max_count);

    // Like read_all, inside the caller's transaction, only for the streams of one partition
    // (stream_hash mod partitions) and, when `categories` is not empty, of those categories.
    static std::vector<RecordedEvent> read_partition(pqxx::transaction_base& txn, Checkpoint after,
                                                     int partitions, int partition,
                                                     const std::vector<std::string>& categories,
                                                     std::size_t max_count);

    // The newest event below the horizon, if any. Read before read_partition in the same
    // transaction: a partition read that returns less than asked has then seen every
    // event of its partition up to this head.
    static std::optional<Checkpoint> head(pqxx::transaction_base& txn);

    // Whether committed events are still hidden by the horizon: a transaction that began
    // before they committed is running somewhere in the cluster. Readers below the horizon
    // see them as soon as it ends, so they look again soon (see HorizonWait) instead of
    // waiting for the next NOTIFY, which may be long in coming.
    static bool hidden_by_horizon(pqxx::transaction_base& txn);

    // 0 when the stream does not exist.
    std::int64_t stream_version(const std::string& stream);

    // For reads of their own (the rebuild's range scans): the select list of an event, and
    // the event from a row selected with it.
    static const char* event_columns();
    static RecordedEvent event_from_row(const pqxx::row& row);

   private:
    platform::pg::Pool& pool_;
    AppendNotifier* notifier_;
};

// How long a reader that found nothing new waits for appends: its poll interval, or, while
// events are hidden by the horizon, 5 ms doubling up to it.
class HorizonWait {
   public:
    explicit HorizonWait(std::chrono::milliseconds poll) : poll_{poll} {}
    std::chrono::milliseconds next(bool hidden) {
        if (!hidden) {
            soon_ = kFirst;
            return poll_;
        }
        const auto wait = std::min(soon_, poll_);
        soon_ = std::min(soon_ * 2, poll_);
        return wait;
    }

   private:
    static constexpr std::chrono::milliseconds kFirst{5};
    std::chrono::milliseconds poll_;
    std::chrono::milliseconds soon_ = kFirst;
};

}  // namespace ordo::eventstore
