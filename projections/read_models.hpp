#pragma once

// The Query API's read models.

#include <memory>
#include <string>
#include <vector>

#include "projections/projection.hpp"

namespace ordo::projections {

// The read models of the query API: orders, inventory, accounts, traces, writing their
// tables in `schema` (the live models in `read`; a rebuild fills a shadow schema). Each
// applies a batch folded per row, with a statement per table and the same result as apply()
// on each event in turn.
// Throws platform::InvalidInput when `schema` is not a plain lower-case identifier.
std::vector<std::unique_ptr<Projection>> read_models(const std::string& schema = "read");

}  // namespace ordo::projections
