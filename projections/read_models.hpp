#pragma once

// The Query API's read models.

#include <memory>
#include <string>
#include <vector>

#include "projections/projection.hpp"

namespace ordo::projections {

// The read models of the query API: orders, inventory, accounts, traces, writing their
// tables in `schema` (the live models in `read`; a rebuild fills a shadow schema). Each
// also offers the rebuild's bulk path (BulkProjection), with the same result as apply().
// Throws platform::InvalidInput when `schema` is not a plain lower-case identifier.
std::vector<std::unique_ptr<Projection>> read_models(const std::string& schema = "read");

}  // namespace ordo::projections
