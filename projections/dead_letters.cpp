// The dead-letter owner: status rules and the statements on ordo.dead_letters.

#include "projections/dead_letters.hpp"

#include <array>
#include <utility>

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/utc_time.hpp"

namespace ordo::projections {
namespace {

constexpr std::array<std::pair<DeadLetterStatus, const char*>, 5> kStatusNames{{
    {DeadLetterStatus::parked, "parked"},
    {DeadLetterStatus::retry_requested, "retry_requested"},
    {DeadLetterStatus::skip_requested, "skip_requested"},
    {DeadLetterStatus::resolved, "resolved"},
    {DeadLetterStatus::skipped, "skipped"},
}};

}  // namespace

const char* to_string(DeadLetterPolicy policy) {
    return policy == DeadLetterPolicy::halt ? "halt" : "skip";
}

std::map<std::string, DeadLetterPolicy> parse_dead_letter_policies(const std::string& text) {
    auto trim = [](std::string t) {
        auto first = t.find_first_not_of(" \t");
        auto last = t.find_last_not_of(" \t");
        return first == std::string::npos ? std::string{} : t.substr(first, last - first + 1);
    };
    std::map<std::string, DeadLetterPolicy> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find(',', start);
        if (end == std::string::npos) end = text.size();
        auto part = trim(text.substr(start, end - start));
        start = end + 1;
        if (part.empty()) continue;
        auto eq = part.find('=');
        auto name = eq == std::string::npos ? std::string{} : trim(part.substr(0, eq));
        auto policy = eq == std::string::npos ? std::string{} : trim(part.substr(eq + 1));
        if (name.empty() || (policy != "skip" && policy != "halt")) {
            throw platform::InvalidInput("dead-letter policy \"" + part +
                                         "\" is not <projection>=skip or <projection>=halt");
        }
        out[name] = policy == "halt" ? DeadLetterPolicy::halt : DeadLetterPolicy::skip;
    }
    return out;
}

const char* to_string(DeadLetterStatus status) {
    for (const auto& [value, name] : kStatusNames) {
        if (value == status) return name;
    }
    return "parked";
}

DeadLetterStatus parse_dead_letter_status(std::string_view text) {
    for (const auto& [value, name] : kStatusNames) {
        if (text == name) return value;
    }
    throw platform::InvalidInput("\"" + std::string{text} + "\" is not a dead-letter status");
}

std::optional<DeadLetterStatus> after_request(DeadLetterStatus current, DeadLetterRequest what) {
    const auto wanted = what == DeadLetterRequest::retry ? DeadLetterStatus::retry_requested
                                                         : DeadLetterStatus::skip_requested;
    if (current == wanted) return current;  // asked already
    if (current != DeadLetterStatus::parked) return std::nullopt;
    return wanted;
}

Settlement settlement_of(DeadLetterStatus status) {
    switch (status) {
        case DeadLetterStatus::retry_requested:
            return Settlement::apply_again;
        case DeadLetterStatus::skip_requested:
            return Settlement::give_up;
        default:
            return Settlement::wait;
    }
}

DeadLetterStatus settled(Settlement settlement, bool applied) {
    switch (settlement) {
        case Settlement::apply_again:
            return applied ? DeadLetterStatus::resolved : DeadLetterStatus::parked;
        case Settlement::give_up:
            return DeadLetterStatus::skipped;
        case Settlement::wait:
            break;
    }
    return DeadLetterStatus::parked;
}

std::int64_t park_dead_letter(pqxx::transaction_base& txn, const std::string& projection,
                              int partition, const eventstore::RecordedEvent& event,
                              const std::string& error, DeadLetterPolicy policy) {
    return txn
        .exec_params1(
            "INSERT INTO ordo.dead_letters (projection, partition, transaction_id, "
            "global_position, stream_id, stream_version, event_id, event_type, "
            "schema_version, category, payload, metadata, recorded_at, error, policy) "
            "VALUES ($1, $2, $3::text::xid8, $4, $5, $6, $7::uuid, $8, $9, $10, $11::jsonb, "
            "$12::jsonb, $13::timestamptz, $14, $15) "
            "ON CONFLICT (projection, transaction_id, global_position) DO UPDATE SET "
            "attempts = ordo.dead_letters.attempts + 1, error = EXCLUDED.error, "
            "status = 'parked' RETURNING id",
            projection, partition, std::to_string(event.transaction_id), event.position,
            event.stream_id, event.version, event.event_id, event.type, event.schema_version,
            event.category, event.payload.dump(), event.metadata.to_json().dump(),
            event.recorded_at, error, to_string(policy))[0]
        .as<std::int64_t>();
}

std::vector<OpenDeadLetter> lock_open_dead_letters(pqxx::transaction_base& txn,
                                                   const std::string& projection, int partition) {
    // The parked event's columns are the event store's, under its names.
    auto rows = txn.exec_params(
        "SELECT id, status, policy, " + eventstore::EventStore::event_columns() +
            " FROM ordo.dead_letters WHERE projection = $1 AND partition = $2 "
            "AND status IN ('parked', 'retry_requested', 'skip_requested') ORDER BY id "
            "FOR UPDATE",
        projection, partition);
    std::vector<OpenDeadLetter> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
        out.push_back(OpenDeadLetter{
            row[0].as<std::int64_t>(), parse_dead_letter_status(row[1].as<std::string>()),
            row[2].as<std::string>() == "halt" ? DeadLetterPolicy::halt : DeadLetterPolicy::skip,
            eventstore::EventStore::event_from_row(row, 3)});
    }
    return out;
}

std::set<std::pair<std::string, int>> requested_dead_letter_slots(pqxx::transaction_base& txn) {
    std::set<std::pair<std::string, int>> out;
    for (const auto& row : txn.exec("SELECT DISTINCT projection, partition FROM ordo.dead_letters "
                                    "WHERE status IN ('retry_requested', 'skip_requested')")) {
        out.emplace(row[0].as<std::string>(), row[1].as<int>());
    }
    return out;
}

void settle_dead_letter(pqxx::transaction_base& txn, const OpenDeadLetter& letter,
                        DeadLetterStatus outcome, const std::string& error) {
    if (outcome == DeadLetterStatus::parked) {
        txn.exec_params(
            "UPDATE ordo.dead_letters SET status = 'parked', attempts = attempts + 1, "
            "error = $2 WHERE id = $1",
            letter.id, error);
        return;
    }
    txn.exec_params("UPDATE ordo.dead_letters SET status = $2, resolved_at = now() WHERE id = $1",
                    letter.id, to_string(outcome));
}

DeadLetterAnswer request_dead_letter(pqxx::work& tx, std::int64_t id, DeadLetterRequest what) {
    auto current =
        tx.exec_params("SELECT status FROM ordo.dead_letters WHERE id = $1 FOR UPDATE", id);
    if (current.empty()) return {DeadLetterAnswer::Kind::not_found, ""};
    const auto now = current[0][0].as<std::string>();
    const auto after = after_request(parse_dead_letter_status(now), what);
    if (!after) return {DeadLetterAnswer::Kind::not_parked, now};
    if (to_string(*after) != now) {
        tx.exec_params(
            "UPDATE ordo.dead_letters SET status = $2, requested_at = now() WHERE id = $1", id,
            to_string(*after));
    }
    return {DeadLetterAnswer::Kind::requested, to_string(*after)};
}

std::vector<ListedDeadLetter> list_dead_letters(pqxx::transaction_base& tx,
                                                const DeadLetterFilter& filter) {
    const char* status = filter.status ? to_string(*filter.status) : nullptr;
    auto rows = tx.exec_params(
        std::string{"SELECT id, projection, partition, transaction_id::text AS txid, "
                    "global_position, stream_id, stream_version, event_id::text, event_type, "
                    "error, attempts, policy, status, "} +
            platform::sql_utc("created_at") +
            " FROM ordo.dead_letters WHERE ($1::text IS NULL OR projection = $1) AND "
            "($2::text IS NULL OR status = $2) ORDER BY id LIMIT $3",
        filter.projection.empty() ? nullptr : filter.projection.c_str(), status, filter.limit);
    std::vector<ListedDeadLetter> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
        out.push_back({row[0].as<std::int64_t>(), row[1].as<std::string>(), row[2].as<int>(),
                       row[3].as<std::string>(), row[4].as<std::int64_t>(),
                       row[5].as<std::string>(), row[6].as<std::int64_t>(),
                       row[7].as<std::string>(), row[8].as<std::string>(), row[9].as<std::string>(),
                       row[10].as<int>(), row[11].as<std::string>(), row[12].as<std::string>(),
                       row[13].as<std::string>()});
    }
    return out;
}

}  // namespace ordo::projections
