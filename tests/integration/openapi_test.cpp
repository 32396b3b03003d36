// The OpenAPI documents describe exactly the routes the command and query services serve.

#include <gtest/gtest.h>

#include <fstream>
#include <map>
#include <optional>
#include <set>

#include "platform/nats/nats.hpp"
#include "platform/service/service_routes.hpp"
#include "projections/dead_letter_routes.hpp"
#include "query/console.hpp"
#include "query/events_api.hpp"
#include "query/service.hpp"
#include "query/subscriptions.hpp"
#include "query/trace_collector.hpp"
#include "tests/support/command_stack.hpp"
#include "tests/support/nats.hpp"

namespace ordo {
namespace {

using Route = std::pair<std::string, std::string>;  // (METHOD, path template)

// Reads the operations of docs/openapi.yaml, each with the scope its `security` line names:
// paths sit at two spaces of indent under `paths:`, their operations at four, and each
// operation has `security: []` ("open") or `security: [{bearer: [scope]}]` at six.
std::map<Route, std::string> documented_routes() {
    std::ifstream in{std::string{ORDO_SOURCE_DIR} + "/docs/openapi.yaml"};
    EXPECT_TRUE(in) << "docs/openapi.yaml is missing";
    std::map<Route, std::string> routes;
    std::string line, path;
    std::optional<Route> operation;
    bool in_paths = false;
    while (std::getline(in, line)) {
        if (line.rfind("paths:", 0) == 0) {
            in_paths = true;
            continue;
        }
        if (!in_paths) continue;
        if (!line.empty() && line[0] != ' ') break;  // the next top-level key
        if (line.rfind("  /", 0) == 0) {
            path = line.substr(2, line.find(':') - 2);
            operation.reset();
        } else if (line.size() > 4 && line.rfind("    ", 0) == 0 && line[4] != ' ') {
            auto method = line.substr(4, line.find(':') - 4);
            operation.reset();
            if (method == "get" || method == "post" || method == "put" || method == "delete" ||
                method == "patch") {
                for (auto& c : method) c = static_cast<char>(std::toupper(c));
                operation = Route{method, path};
                routes[*operation] = "";  // no security line yet
            }
        } else if (operation && line.rfind("      security: ", 0) == 0) {
            const std::string value = line.substr(16);
            const std::string prefix = "[{bearer: [";
            if (value == "[]") {
                routes[*operation] = "open";
            } else if (value.rfind(prefix, 0) == 0 && value.size() > prefix.size() + 3) {
                routes[*operation] = value.substr(prefix.size(), value.size() - prefix.size() - 3);
            } else {
                ADD_FAILURE() << "unreadable security line: " << line;
            }
        }
    }
    return routes;
}

// The two services share one document: every GET under /v1/ is the query service's, and so
// are the console (/console...) and the trace collector (POST /v1/traces); every other POST
// is the command service's; both serve /healthz, /readyz and /metrics, and the query service
// still answers the dead-letter requests that moved to the command service (308).
bool is_console_route(const Route& route) {
    return route.second.rfind("/console", 0) == 0 ||
           (route.first == "POST" && route.second == "/v1/traces");
}
bool is_query_route(const Route& route) {
    return route.first == "GET" || route.second.rfind("/v1/admin/dead-letters/", 0) == 0 ||
           is_console_route(route);
}
bool is_command_route(const Route& route) {
    return !is_console_route(route) &&
           (route.first == "POST" || route.second.rfind("/v1/", 0) != 0);
}

// Every route `router` serves is documented with the scope the router checks, and every
// documented route of that service is served.
void expect_documented_exactly(const platform::http::Router& router, bool query_service) {
    std::set<Route> served;
    auto documented = documented_routes();
    ASSERT_FALSE(documented.empty());
    for (const auto& listed : router.routes()) {
        Route route{listed.method, listed.pattern};
        served.insert(route);
        auto it = documented.find(route);
        if (it == documented.end()) {
            ADD_FAILURE() << route.first << " " << route.second
                          << " is served but not in docs/openapi.yaml";
            continue;
        }
        EXPECT_EQ(it->second, platform::http::access_name(listed.access))
            << route.first << " " << route.second
            << ": docs/openapi.yaml names another scope than the router checks";
    }
    for (const auto& [route, scope] : documented) {
        if (!(query_service ? is_query_route(route) : is_command_route(route))) continue;
        EXPECT_TRUE(served.count(route))
            << route.first << " " << route.second << " is in docs/openapi.yaml but not served";
    }
}

TEST(OpenApi, DescribesExactlyTheRoutesTheCommandServiceServes) {
    testing::TestDatabase db;
    platform::metrics::Registry registry;
    platform::pg::Pool pool{{.url = db.command_url(), .size = 1, .preparers = {}}};
    platform::nats::Connection nats{testing::nats_admin(), platform::Logger::null_logger()};
    eventstore::AppendNotifier notifier{db.command_url(), platform::Logger::null_logger()};
    command::Executor executor{pool, &notifier, registry, platform::Logger::null_logger(), {}};
    command::CommandService service{executor, platform::Logger::null_logger()};
    platform::http::Router router;
    service.register_routes(router);
    projections::add_dead_letter_routes(router, pool, platform::Logger::null_logger());
    platform::add_service_routes(router, registry, pool, nats);

    expect_documented_exactly(router, /*query_service=*/false);
}

TEST(OpenApi, DescribesExactlyTheRoutesTheQueryServiceServes) {
    testing::TestDatabase db;
    platform::metrics::Registry registry;
    platform::pg::Pool pool{{.url = db.query_url(), .size = 1, .preparers = {}}};
    platform::nats::Connection nats{testing::nats_admin(), platform::Logger::null_logger()};
    query::QueryService service{pool, 16, platform::Logger::null_logger()};
    query::ShardSources sources{{{0, &pool, db.query_url()}}};
    query::Subscriptions subscriptions{sources, nullptr, {}, platform::Logger::null_logger()};
    query::EventsApi events{sources, subscriptions, nullptr, platform::Logger::null_logger()};
    platform::http::Router router;
    service.register_routes(router);
    events.register_routes(router);
    projections::add_dead_letter_redirects(router, "http://127.0.0.1:8080");
    query::SpanStore spans;
    query::TraceCollector collector{spans, platform::Logger::null_logger(), registry};
    collector.register_routes(router);
    query::add_console_routes(router, {.command_url = "http://127.0.0.1:8080"},
                              platform::Logger::null_logger());
    platform::add_service_routes(router, registry, pool, nats);

    expect_documented_exactly(router, /*query_service=*/true);
}

}  // namespace
}  // namespace ordo
