#pragma once

#include <memory>
#include <vector>

#include "projections/projection.hpp"

namespace ordo::projections {

// The read models of the query API: orders, inventory, accounts, traces.
std::vector<std::unique_ptr<Projection>> read_models();

}  // namespace ordo::projections
