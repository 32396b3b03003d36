// The Command API's dead-letter request routes and the query service's redirects to them.

#include "projections/dead_letter_routes.hpp"

#include <algorithm>
#include <charconv>
#include <optional>

#include <nlohmann/json.hpp>

#include "platform/service/dependency_failure.hpp"
#include "projections/dead_letters.hpp"

namespace ordo::projections {
namespace {

using platform::http::Access;
using platform::http::FieldError;
using platform::http::problem;
using platform::http::Request;
using platform::http::Response;

std::optional<std::int64_t> positive_id(const std::string& text) {
    if (text.empty() || text.size() > 18 ||
        !std::all_of(text.begin(), text.end(), [](char c) { return c >= '0' && c <= '9'; })) {
        return std::nullopt;
    }
    std::int64_t value = 0;
    std::from_chars(text.data(), text.data() + text.size(), value);
    if (value < 1) return std::nullopt;
    return value;
}

Response answer(platform::pg::Pool& pool, const platform::Logger& log, Request& request,
                DeadLetterRequest what) {
    std::vector<FieldError> errors;
    auto id = positive_id(request.params.at("id"));
    if (!id) errors.push_back({"path.id", "must be a positive integer"});
    for (const auto& [name, value] : request.query) {
        errors.push_back({"query." + name, "is not a parameter of this route"});
    }
    if (request.body.find_first_not_of(" \t\r\n") != std::string::npos) {
        // A discarded (unparsable) value compares unequal to nothing, so ask for it first.
        auto body = nlohmann::json::parse(request.body, nullptr, false);
        if (body.is_discarded() || !body.is_object() || !body.empty()) {
            errors.push_back({"body", "must be empty or {}"});
        }
    }
    if (!errors.empty()) {
        return problem(422, "validation_failed", "the request has invalid fields",
                       std::move(errors));
    }
    try {
        auto result = pool.transact<pqxx::work>(
            [&](pqxx::work& tx) { return request_dead_letter(tx, *id, what); });
        const std::string name = std::to_string(*id);
        switch (result.kind) {
            case DeadLetterAnswer::Kind::not_found:
                return problem(404, "not_found", "no dead letter " + name);
            case DeadLetterAnswer::Kind::not_parked:
                return problem(409, "conflict",
                               "dead letter " + name + " is " + result.status +
                                   "; only a parked one can be retried or skipped");
            case DeadLetterAnswer::Kind::requested:
                break;
        }
        log.log(platform::LogLevel::info, "dead letter request", request.trace,
                {{"dead_letter", *id}, {"status", result.status}, {"caller", request.caller}});
        return Response::json(202, {{"id", *id}, {"status", result.status}});
    } catch (...) {
        const std::string unavailable = "the database is unavailable; retry shortly";
        return platform::answer_dependency_failure(
            log, request.trace,
            {.unavailable = unavailable,
             .overloaded = unavailable,
             .outcome_unknown = "the connection broke while the request was committing; asking "
                                "again is safe"});
    }
}

constexpr const char* kRetry = "/v1/admin/dead-letters/{id}/retry";
constexpr const char* kSkip = "/v1/admin/dead-letters/{id}/skip";

}  // namespace

void add_dead_letter_routes(platform::http::Router& router, platform::pg::Pool& pool,
                            platform::Logger log) {
    for (auto [pattern, what] :
         {std::pair{kRetry, DeadLetterRequest::retry}, std::pair{kSkip, DeadLetterRequest::skip}}) {
        router.add("POST", pattern, Access::admin,
                   [&pool, log, what = what](Request& r) { return answer(pool, log, r, what); });
    }
}

void add_dead_letter_redirects(platform::http::Router& router, std::string command_url) {
    while (!command_url.empty() && command_url.back() == '/') command_url.pop_back();
    for (const char* pattern : {kRetry, kSkip}) {
        router.add("POST", pattern, Access::admin, [command_url](Request& r) {
            if (command_url.empty()) {
                return problem(
                    410, "gone",
                    "dead-letter requests moved to the Command API: POST " + r.path + " there");
            }
            const std::string location = command_url + r.path;
            Response response =
                Response::json(308, {{"location", location},
                                     {"detail", "dead-letter requests moved to the Command API"}});
            response.headers.emplace_back("Location", location);
            return response;
        });
    }
}

}  // namespace ordo::projections
