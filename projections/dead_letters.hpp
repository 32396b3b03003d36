#pragma once

// Dead letters, owned in one place: their statuses, the rules that move a letter from one
// status to another, and every statement that writes or lists ordo.dead_letters. The
// projection runtime parks and settles through here, the Command API's admin routes and
// `ordo dead-letters` request and list through here.
//
// The C++ rules below decide; the table's trigger (ordo.dead_letter_guard, migration 0005)
// only guards the database against writers that bypass them, and agrees with them.

#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"

namespace ordo::projections {

// What a partition does after parking a poison event: go on past it, or wait at it until an
// operator retries or skips it.
enum class DeadLetterPolicy { skip, halt };

const char* to_string(DeadLetterPolicy policy);

// "orders=halt,inventory=skip" (blanks allowed around the parts); throws
// platform::InvalidInput naming the bad part.
std::map<std::string, DeadLetterPolicy> parse_dead_letter_policies(const std::string& text);

// parked -> retry_requested | skip_requested (an operator asks);
// retry_requested -> resolved (applied) | parked (failed again);
// skip_requested -> skipped. The first three are open: the projector still has to act.
// A poison event parked again (the same event failing after a rebuild) is parked whatever
// its letter's status was.
enum class DeadLetterStatus { parked, retry_requested, skip_requested, resolved, skipped };

enum class DeadLetterRequest { retry, skip };

const char* to_string(DeadLetterStatus status);
// Throws platform::InvalidInput for a name that is no status.
DeadLetterStatus parse_dead_letter_status(std::string_view text);

// The status an operator's request leaves a letter in, or nullopt when it is refused (only
// a parked letter can be asked about). Asking again for what was already asked is accepted
// and changes nothing: the result equals `current`.
std::optional<DeadLetterStatus> after_request(DeadLetterStatus current, DeadLetterRequest what);

// What the projector owning the letter's partition does with it now.
enum class Settlement { wait, apply_again, give_up };
Settlement settlement_of(DeadLetterStatus status);

// The status a letter settles in: resolved when applied again, parked when that failed,
// skipped when given up.
DeadLetterStatus settled(Settlement settlement, bool applied);

// ---- Statements on ordo.dead_letters (the caller's transaction; it commits).

// Parks `event`, which `projection` cannot apply, for `partition`; the letter's id. An event
// parked before counts one more attempt and is parked again.
std::int64_t park_dead_letter(pqxx::transaction_base& txn, const std::string& projection,
                              int partition, const eventstore::RecordedEvent& event,
                              const std::string& error, DeadLetterPolicy policy);

struct OpenDeadLetter {
    std::int64_t id;
    DeadLetterStatus status;
    DeadLetterPolicy policy;
    eventstore::RecordedEvent event;
};

// The open letters of a partition, oldest first, each row locked for the transaction.
std::vector<OpenDeadLetter> lock_open_dead_letters(pqxx::transaction_base& txn,
                                                   const std::string& projection, int partition);

// The (projection, partition) slots with a letter an operator asked to retry or skip.
std::set<std::pair<std::string, int>> requested_dead_letter_slots(pqxx::transaction_base& txn);

// Records how `letter` was settled (settled()); `error` is the new failure when a retry
// failed again.
void settle_dead_letter(pqxx::transaction_base& txn, const OpenDeadLetter& letter,
                        DeadLetterStatus outcome, const std::string& error = {});

struct DeadLetterAnswer {
    enum class Kind { requested, not_found, not_parked };
    Kind kind = Kind::not_found;
    std::string status;  // the letter's status afterwards (requested, not_parked)
};

// An operator's request on letter `id` (after_request), under a row lock. Needs the command
// role (or the owner).
DeadLetterAnswer request_dead_letter(pqxx::work& tx, std::int64_t id, DeadLetterRequest what);

struct DeadLetterFilter {
    std::string projection;  // empty: every projection
    std::optional<DeadLetterStatus> status;
    int limit = 100;
};

struct ListedDeadLetter {
    std::int64_t id;
    std::string projection;
    int partition;
    std::string transaction_id;
    std::int64_t global_position;
    std::string stream;
    std::int64_t version;
    std::string event_id;
    std::string type;
    std::string error;
    int attempts;
    std::string policy;
    std::string status;
    std::string created_at;  // RFC 3339, UTC
};

// The letters matching `filter`, by id.
std::vector<ListedDeadLetter> list_dead_letters(pqxx::transaction_base& tx,
                                                const DeadLetterFilter& filter);

}  // namespace ordo::projections
