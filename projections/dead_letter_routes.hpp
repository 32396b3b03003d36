#pragma once

// The HTTP face of operators' dead-letter requests: the Command API's admin routes, which
// ask the dead-letter owner (projections/dead_letters.hpp), and the query service's former
// routes, which point to them.

#include "platform/core/log.hpp"
#include "platform/http/http.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::projections {

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
