// /healthz, /readyz (a SELECT 1 through the pool, and whether NATS is connected) and /metrics.
#include "platform/service/service_routes.hpp"

#include <nlohmann/json.hpp>

#include "platform/core/metrics.hpp"
#include "platform/nats/nats.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::platform {

void add_service_routes(http::Router& router, metrics::Registry& registry, pg::Pool& pool,
                        nats::Connection& nats) {
    using http::Access;
    using http::Request;
    using http::Response;
    router.add("GET", "/healthz", Access::open, [](Request&) {
        return Response::json(200, {{"status", "ok"}});
    });
    router.add("GET", "/readyz", Access::open, [&pool, &nats](Request&) {
        bool db = false;
        try {
            pool.transact<pqxx::nontransaction>([](auto& tx) { tx.exec("SELECT 1"); });
            db = true;
        } catch (const std::exception&) {
            // Not ready is the answer; the pool logs nothing, the body says which is down.
        }
        bool bus = nats.connected();
        nlohmann::json body = {{"postgres", db ? "up" : "down"}, {"nats", bus ? "up" : "down"}};
        if (db && bus) return Response::json(200, body);
        return http::problem(503, "unavailable", body.dump());
    });
    router.add("GET", "/metrics", Access::open, [&registry](Request&) {
        Response r;
        r.content_type = "text/plain; version=0.0.4; charset=utf-8";
        r.body = registry.render();
        return r;
    });
}

}  // namespace ordo::platform
