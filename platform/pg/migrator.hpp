// The schema migrator: numbered SQL files applied in order, each once, with its checksum
// recorded; a history this binary cannot safely extend is refused.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

#include "platform/core/log.hpp"

namespace ordo::platform::pg {

struct Migration {
    int version;
    std::string name;  // file name, e.g. "0001_event_store.sql"
    std::string sql;
};

// A migration history that this binary cannot safely extend: an applied file was
// edited, or the database knows a migration this binary does not.
class MigrationError : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

struct MigrationReport {
    std::vector<std::string> applied;
    std::vector<std::string> already_applied;
};

// Applies `migrations` in version order, each in its own transaction, recording a
// SHA-256 checksum of its text. Concurrent runs serialize on an advisory lock, so two
// `ordo migrate` at once apply each file exactly once.
MigrationReport migrate(const std::string& url, const std::vector<Migration>& migrations,
                        const Logger& log);

}  // namespace ordo::platform::pg
