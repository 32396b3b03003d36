// UpcastingProjection over a list of projections.
#include "projections/upcasting.hpp"

#include <utility>

namespace ordo::projections {

std::vector<std::unique_ptr<Projection>> upcasting(
    std::vector<std::unique_ptr<Projection>> projections, const eventstore::Upcasters& upcasters) {
    std::vector<std::unique_ptr<Projection>> out;
    out.reserve(projections.size());
    for (auto& p : projections) {
        out.push_back(std::make_unique<UpcastingProjection>(std::move(p), upcasters));
    }
    return out;
}

}  // namespace ordo::projections
