#include "eventstore/event_store.hpp"

#include <charconv>
#include <set>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "platform/errors.hpp"
#include "platform/pg.hpp"

namespace ordo::eventstore {
namespace {

constexpr std::size_t kMaxEventsPerAppend = 10'000;
constexpr std::size_t kMaxStreamIdLength = 200;
constexpr std::size_t kMaxEventTypeLength = 200;

constexpr const char* kEventColumns =
    "global_position, transaction_id::text AS txid, stream_id, category, stream_version, "
    "event_id::text, event_type, schema_version, payload::text, metadata::text, "
    "to_char(recorded_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')";

bool is_id_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

bool is_uuid(std::string_view s) {
    if (s.size() != 36) return false;
    for (std::size_t i = 0; i < s.size(); ++i) {
        bool dash = i == 8 || i == 13 || i == 18 || i == 23;
        char c = s[i];
        if (dash != (c == '-')) return false;
        if (!dash && !std::isxdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
}

std::uint64_t parse_u64(const std::string& text) {
    std::uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc{} || ptr != text.data() + text.size()) {
        throw std::runtime_error("not an unsigned integer: " + text);
    }
    return value;
}

void validate(const std::string& stream, const std::vector<NewEvent>& events) {
    if (!is_valid_stream_id(stream)) {
        throw platform::InvalidInput("invalid stream id '" + stream +
                                     "': expected <category>-<id> of [A-Za-z0-9._-]");
    }
    if (events.empty()) throw platform::InvalidInput("an append needs at least one event");
    if (events.size() > kMaxEventsPerAppend) {
        throw platform::InvalidInput("at most " + std::to_string(kMaxEventsPerAppend) +
                                     " events per append");
    }
    std::set<std::string> ids;
    for (const auto& e : events) {
        if (!is_uuid(e.event_id)) {
            throw platform::InvalidInput("event id '" + e.event_id + "' is not a UUID");
        }
        if (!ids.insert(e.event_id).second) {
            throw platform::InvalidInput("event id " + e.event_id + " appears twice in one append");
        }
        if (e.type.empty() || e.type.size() > kMaxEventTypeLength) {
            throw platform::InvalidInput("event type must be 1 to 200 characters");
        }
    }
}

std::string encode_batch(const std::vector<NewEvent>& events) {
    auto batch = nlohmann::json::array();
    for (const auto& e : events) {
        batch.push_back({{"event_id", e.event_id},
                         {"type", e.type},
                         {"schema_version", e.schema_version},
                         {"payload", e.payload},
                         {"metadata", e.metadata.to_json()}});
    }
    return batch.dump();
}

RecordedEvent to_event(const pqxx::row& row) {
    return RecordedEvent{
        row[0].as<std::int64_t>(),
        parse_u64(row[1].as<std::string>()),
        row[2].as<std::string>(),
        row[3].as<std::string>(),
        row[4].as<std::int64_t>(),
        row[5].as<std::string>(),
        row[6].as<std::string>(),
        row[7].as<int>(),
        nlohmann::json::parse(row[8].as<std::string>()),
        Metadata::from_json(nlohmann::json::parse(row[9].as<std::string>())),
        row[10].as<std::string>(),
    };
}

}  // namespace

ExpectedVersion ExpectedVersion::exact(std::int64_t version) {
    if (version < 1) throw platform::InvalidInput("an exact expected version is at least 1");
    return ExpectedVersion{version};
}

std::string ExpectedVersion::to_string() const {
    if (value_ < 0) return "any";
    if (value_ == 0) return "no stream";
    return std::to_string(value_);
}

nlohmann::json Metadata::to_json() const {
    return {{"trace_id", trace_id},
            {"span_id", span_id},
            {"correlation_id", correlation_id},
            {"causation_id", causation_id},
            {"command_id", command_id},
            {"actor", actor}};
}

Metadata Metadata::from_json(const nlohmann::json& j) {
    auto get = [&](const char* key) {
        auto it = j.find(key);
        return it != j.end() && it->is_string() ? it->get<std::string>() : std::string{};
    };
    return {get("trace_id"),     get("span_id"),    get("correlation_id"),
            get("causation_id"), get("command_id"), get("actor")};
}

std::string Checkpoint::token() const {
    return std::to_string(transaction_id) + "." + std::to_string(position);
}

std::optional<Checkpoint> Checkpoint::parse_token(std::string_view token) {
    auto dot = token.find('.');
    if (dot == std::string_view::npos || token.size() > 48) return std::nullopt;
    Checkpoint c;
    auto first = token.substr(0, dot);
    auto second = token.substr(dot + 1);
    auto r1 = std::from_chars(first.data(), first.data() + first.size(), c.transaction_id);
    auto r2 = std::from_chars(second.data(), second.data() + second.size(), c.position);
    if (r1.ec != std::errc{} || r1.ptr != first.data() + first.size() || r2.ec != std::errc{} ||
        r2.ptr != second.data() + second.size() || first.empty() || second.empty() ||
        c.position < 0) {
        return std::nullopt;
    }
    return c;
}

ConcurrencyConflict::ConcurrencyConflict(std::string stream, ExpectedVersion expected,
                                         std::int64_t actual)
    : std::runtime_error("stream " + stream + " is at version " + std::to_string(actual) +
                         ", expected " + expected.to_string()),
      stream_{std::move(stream)},
      actual_{actual} {}

EventIdReused::EventIdReused(std::string event_id)
    : std::runtime_error("event id " + event_id +
                         " is already stored with other content or in another place"),
      event_id_{std::move(event_id)} {}

bool is_valid_stream_id(std::string_view stream) {
    auto dash = stream.find('-');
    if (stream.empty() || stream.size() > kMaxStreamIdLength || dash == 0 ||
        dash == std::string_view::npos || dash + 1 == stream.size()) {
        return false;
    }
    for (char c : stream) {
        if (!is_id_char(c)) return false;
    }
    return true;
}

std::string category_of(std::string_view stream) {
    return std::string{stream.substr(0, stream.find('-'))};
}

void EventStore::prepare(pqxx::connection& conn) {
    conn.prepare("ordo_append", "SELECT * FROM ordo.append_events($1, $2, $3::jsonb)");
    conn.prepare("ordo_read_stream",
                 std::string{"SELECT "} + kEventColumns +
                     " FROM ordo.events WHERE stream_id = $1 AND stream_version >= $2"
                     " ORDER BY stream_version LIMIT $3");
    conn.prepare("ordo_read_all",
                 std::string{"SELECT "} + kEventColumns +
                     " FROM ordo.events"
                     " WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)"
                     "   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
                     " ORDER BY transaction_id, global_position LIMIT $3");
    conn.prepare("ordo_read_partition",
                 std::string{"SELECT "} + kEventColumns +
                     " FROM ordo.events"
                     " WHERE (transaction_id, global_position) > ($1::text::xid8, $2::bigint)"
                     "   AND transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
                     "   AND stream_hash % $3 = $4"
                     "   AND (cardinality($5::text[]) = 0 OR category = ANY($5::text[]))"
                     " ORDER BY transaction_id, global_position LIMIT $6");
    conn.prepare("ordo_head",
                 "SELECT transaction_id::text AS txid, global_position FROM ordo.events"
                 " WHERE transaction_id < pg_snapshot_xmin(pg_current_snapshot())"
                 " ORDER BY transaction_id DESC, global_position DESC LIMIT 1");
    conn.prepare("ordo_stream_version",
                 "SELECT coalesce((SELECT version FROM ordo.streams WHERE stream_id = $1), 0)");
}

AppendResult EventStore::append(pqxx::transaction_base& txn, const std::string& stream,
                                ExpectedVersion expected, const std::vector<NewEvent>& events) {
    validate(stream, events);
    pqxx::result rows;
    try {
        rows = txn.exec_prepared("ordo_append", stream, expected.encoded(), encode_batch(events));
    } catch (const pqxx::unique_violation& e) {
        // Only a concurrent append of the same event ids to another stream gets here;
        // the stream lock turns every same-stream race into a replay or a conflict.
        if (std::string_view{e.what()}.find("events_event_id_key") != std::string_view::npos) {
            throw EventIdReused(events.front().event_id);
        }
        throw;
    }
    const auto outcome = rows.at(0)[0].as<std::string>();
    if (outcome == "conflict") {
        throw ConcurrencyConflict(stream, expected, rows[0][1].as<std::int64_t>());
    }
    if (outcome == "reused") throw EventIdReused(rows[0][5].as<std::string>());

    AppendResult result{};
    result.replayed = outcome == "replayed";
    for (const auto& row : rows) {
        result.positions.push_back(row[3].as<std::int64_t>());
        result.checkpoint = {parse_u64(row[4].as<std::string>()), row[3].as<std::int64_t>()};
    }
    result.first_version = rows.front()[2].as<std::int64_t>();
    result.last_version = rows.back()[2].as<std::int64_t>();
    return result;
}

AppendResult EventStore::append(const std::string& stream, ExpectedVersion expected,
                                const std::vector<NewEvent>& events) {
    validate(stream, events);
    // One statement in autocommit is atomic and saves the BEGIN and COMMIT round trips.
    auto result = pool_.transact<pqxx::nontransaction>(
        [&](auto& txn) { return append(txn, stream, expected, events); });
    if (notifier_ && !result.replayed) notifier_->signal();
    return result;
}

std::vector<RecordedEvent> EventStore::read_stream(pqxx::transaction_base& txn,
                                                   const std::string& stream,
                                                   std::int64_t from_version,
                                                   std::size_t max_count) {
    std::vector<RecordedEvent> out;
    for (const auto& row : txn.exec_prepared("ordo_read_stream", stream, from_version,
                                             static_cast<std::int64_t>(max_count))) {
        out.push_back(to_event(row));
    }
    return out;
}

std::vector<RecordedEvent> EventStore::read_stream(const std::string& stream,
                                                   std::int64_t from_version,
                                                   std::size_t max_count) {
    return pool_.transact<pqxx::nontransaction>(
        [&](auto& txn) { return read_stream(txn, stream, from_version, max_count); });
}

std::vector<RecordedEvent> EventStore::read_all(Checkpoint after, std::size_t max_count) {
    return pool_.transact<pqxx::nontransaction>([&](auto& txn) {
        std::vector<RecordedEvent> out;
        for (const auto& row :
             txn.exec_prepared("ordo_read_all", std::to_string(after.transaction_id),
                               after.position, static_cast<std::int64_t>(max_count))) {
            out.push_back(to_event(row));
        }
        return out;
    });
}

std::vector<RecordedEvent> EventStore::read_partition(pqxx::transaction_base& txn, Checkpoint after,
                                                      int partitions, int partition,
                                                      const std::vector<std::string>& categories,
                                                      std::size_t max_count) {
    std::string category_array = "{";
    for (std::size_t i = 0; i < categories.size(); ++i) {
        category_array += (i ? "," : "") + categories[i];
    }
    category_array += "}";
    std::vector<RecordedEvent> out;
    for (const auto& row : txn.exec_prepared(
             "ordo_read_partition", std::to_string(after.transaction_id), after.position,
             partitions, partition, category_array, static_cast<std::int64_t>(max_count))) {
        out.push_back(to_event(row));
    }
    return out;
}

std::optional<Checkpoint> EventStore::head(pqxx::transaction_base& txn) {
    auto rows = txn.exec_prepared("ordo_head");
    if (rows.empty()) return std::nullopt;
    return Checkpoint{parse_u64(rows[0][0].as<std::string>()), rows[0][1].as<std::int64_t>()};
}

bool EventStore::hidden_by_horizon(pqxx::transaction_base& txn) {
    return txn
        .exec1(
            "SELECT EXISTS (SELECT 1 FROM ordo.events WHERE transaction_id >= "
            "pg_snapshot_xmin(pg_current_snapshot()))")[0]
        .as<bool>();
}

std::int64_t EventStore::stream_version(const std::string& stream) {
    return pool_.transact<pqxx::nontransaction>([&](auto& txn) {
        return txn.exec_prepared1("ordo_stream_version", stream)[0].template as<std::int64_t>();
    });
}

const char* EventStore::event_columns() {
    return kEventColumns;
}

RecordedEvent EventStore::event_from_row(const pqxx::row& row) {
    return to_event(row);
}

}  // namespace ordo::eventstore
