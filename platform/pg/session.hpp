// A connection of its own, outside the pool, for state that lives in the session.
#pragma once

#include <string>

#include <pqxx/connection>

namespace ordo::platform::pg {

// A PostgreSQL connection with connection_url()'s parameters (keepalives, timeouts,
// application_name) that never reconnects by itself. libpqxx 6 re-opens a broken connection
// when the next transaction starts on it, in a new session that holds none of the old one's
// advisory locks, settings or temporary state; an owner that believed it still held a lock
// would go on without it. A Session that broke stays broken: every use throws
// pqxx::broken_connection, and its owner opens a new one and takes again what it held.
// For every connection that is not a pool's (the pool's connections behave the same way).
class Session final : public pqxx::connection {
   public:
    Session(const std::string& url, const std::string& application_name);
};

}  // namespace ordo::platform::pg
