#pragma once

#include <cstdint>
#include <string>

#include <pqxx/pqxx>

#include "platform/http.hpp"
#include "platform/log.hpp"
#include "platform/pg.hpp"

// Operators' requests about dead letters. The projection runtime parks a poison event as a
// dead letter and settles it (resolved, skipped); an operator only asks, for a parked one,
// that it be retried or skipped, and the projector owning the partition carries that out.
// This is the one place that asks: the Command API's admin routes and `ordo dead-letters
// retry|skip` both come here.
namespace ordo::projections {

enum class DeadLetterRequest { retry, skip };

struct DeadLetterAnswer {
    enum class Kind { requested, not_found, not_parked };
    Kind kind = Kind::not_found;
    std::string status;  // the letter's status afterwards (requested, not_parked)
};

// Moves parked letter `id` to retry_requested or skip_requested under a row lock. Asking
// again for what was already asked is `requested` again (idempotent); a letter in any other
// state is `not_parked` and unchanged. Needs the command role (or the owner); the caller commits.
DeadLetterAnswer request_dead_letter(pqxx::work& tx, std::int64_t id, DeadLetterRequest what);

// POST /v1/admin/dead-letters/{id}/retry and …/skip, under the admin scope: 202 with the
// new status, 404, 409 for a letter that is not parked, 422 for a bad id or query, 503
// while the database is unavailable. For the command service, on its role.
void add_dead_letter_routes(platform::http::Router& router, platform::pg::Pool& pool,
                            platform::Logger log);

// The query service's former routes for the same requests answer 308 Permanent Redirect to
// `command_url` (e.g. "https://orders.example.com") with the same path, for one release, so
// that clients find the new home; they need the admin scope like the routes they point to.
// Without a `command_url` they answer 410 gone, naming the new route: a guessed default
// would send admin tokens to the wrong place.
void add_dead_letter_redirects(platform::http::Router& router, std::string command_url);

}  // namespace ordo::projections
