// The console's routes: its embedded files, and the dead-letter actions forwarded to the
// Command API.
#include "query/console.hpp"

#include <cstdint>
#include <cstdio>
#include <memory>
#include <optional>

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/http/http_client.hpp"
#include "query/console_assets.hpp"

namespace ordo::query {
namespace {

using platform::http::Access;
using platform::http::Request;
using platform::http::Response;

// Scripts, styles, images and requests from this origin only; no inline script or style,
// no frames, no forms posting elsewhere, no plugins.
constexpr const char* kContentSecurityPolicy =
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

std::string etag_of(std::string_view body) {
    std::uint64_t hash = 0xcbf29ce484222325ULL;  // FNV-1a
    for (unsigned char c : body) {
        hash ^= c;
        hash *= 0x100000001b3ULL;
    }
    char text[24];
    std::snprintf(text, sizeof text, "\"%016llx\"", static_cast<unsigned long long>(hash));
    return text;
}

const ConsoleAsset* find_asset(std::string_view name) {
    for (const auto& asset : console_assets()) {
        if (asset.name == name) return &asset;
    }
    return nullptr;
}

Response serve_asset(const Request& request, const ConsoleAsset& asset) {
    const auto etag = etag_of(asset.body);
    Response r;
    r.headers = {{"ETag", etag},
                 {"Cache-Control", "no-cache"},
                 {"Content-Security-Policy", kContentSecurityPolicy},
                 {"X-Content-Type-Options", "nosniff"},
                 {"Referrer-Policy", "no-referrer"},
                 {"X-Frame-Options", "DENY"}};
    if (request.header("if-none-match") == etag) {
        r.status = 304;
        r.content_type.clear();
        return r;
    }
    r.content_type = std::string{asset.content_type};
    r.body = std::string{asset.body};
    return r;
}

// A dead letter's id: 1 to 18 digits (ids are positive bigints).
bool is_letter_id(const std::string& id) {
    if (id.empty() || id.size() > 18) return false;
    for (char c : id) {
        if (c < '0' || c > '9') return false;
    }
    return true;
}

}  // namespace

void add_console_routes(platform::http::Router& router, ConsoleOptions options,
                        platform::Logger log) {
    router.add("GET", "/console", Access::open,
               [](Request& r) { return serve_asset(r, *find_asset("index.html")); });
    router.add("GET", "/console/{file}", Access::open, [](Request& r) {
        const auto* asset = find_asset(r.params.at("file"));
        if (!asset) return platform::http::problem("not_found", "the console has no such file");
        return serve_asset(r, *asset);
    });

    auto client = std::make_shared<platform::http_client::Client>(
        platform::http_client::ClientOptions{.ca_file = options.ca_file});
    auto base = options.command_url;
    while (!base.empty() && base.back() == '/') base.pop_back();
    for (const std::string action : {"retry", "skip"}) {
        auto forward = [client, base, action, timeout = options.timeout, log](Request& r) {
            // Another site can make a browser POST here (a form, or a script's simple request,
            // which carries no token when the API is open) but cannot add this header without
            // a preflight, which this server never grants.
            if (!r.header("x-ordo-console")) {
                return platform::http::problem(
                    403, "forbidden",
                    "the console's actions need the header X-Ordo-Console (the console sends it)");
            }
            const auto& id = r.params.at("id");
            if (!is_letter_id(id)) {
                return platform::http::problem("validation_failed", "the letter's id is invalid",
                                               {{"id", "must be a positive integer"}});
            }
            if (base.empty()) {
                return platform::http::problem(
                    503, "unavailable",
                    "the query service does not know where the Command API is "
                    "(ORDO_COMMAND_URL), so it cannot forward the action");
            }
            platform::http_client::Response answer;
            try {
                std::vector<std::pair<std::string, std::string>> headers{
                    {"Content-Type", "application/json"}, {"traceparent", r.trace.traceparent()}};
                if (auto authorization = r.header("authorization"))
                    headers.emplace_back("Authorization", *authorization);
                answer = client->post(base + "/v1/admin/dead-letters/" + id + "/" + action, headers,
                                      "", timeout);
            } catch (const std::exception& e) {
                log.warn("the Command API did not take a dead-letter action",
                         {{"action", action},
                          {"id", id},
                          {"error", e.what()},
                          {"trace_id", r.trace.trace_id_hex()}});
                return platform::http::problem(503, "unavailable",
                                               "the Command API cannot be reached; retry shortly");
            }
            auto body = nlohmann::json::parse(answer.body, nullptr, false);
            if (body.is_discarded()) {
                return platform::http::problem(
                    502, "bad_gateway",
                    "the Command API answered " + std::to_string(answer.status) + " without JSON");
            }
            auto response = Response::json(answer.status, body);
            if (answer.status >= 400) response.content_type = "application/problem+json";
            return response;
        };
        router.add("POST", "/console/api/dead-letters/{id}/" + action, Access::admin, forward);
    }
}

}  // namespace ordo::query
