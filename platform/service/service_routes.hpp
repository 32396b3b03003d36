// The routes every service serves besides its own: health, readiness and metrics.
#pragma once

#include "platform/http/http.hpp"

namespace ordo::platform {
namespace metrics {
class Registry;
}
namespace pg {
class Pool;
}
namespace nats {
class Connection;
}

// The routes every Ordo service serves besides its own: /healthz (alive), /readyz
// (PostgreSQL and NATS reachable, else 503) and /metrics (Prometheus text).
void add_service_routes(http::Router& router, metrics::Registry& registry, pg::Pool& pool,
                        nats::Connection& nats);

}  // namespace ordo::platform
