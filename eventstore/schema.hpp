#pragma once

// The database migrations built into the binary.

#include <vector>

#include "platform/pg/migrator.hpp"

namespace ordo::eventstore {

// Ordo's migrations, compiled into the binary from migrations/*.sql.
const std::vector<platform::pg::Migration>& migrations();

}  // namespace ordo::eventstore
