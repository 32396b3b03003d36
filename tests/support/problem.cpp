// The checks behind is_problem (status, content type, members, field errors), and the fields
// a problem document's errors name.
#include "tests/support/problem.hpp"

#include <nlohmann/json.hpp>

namespace ordo::testing {

::testing::AssertionResult is_problem(const HttpResponse& res, int status,
                                      const std::string& type) {
    auto failure = ::testing::AssertionFailure();
    failure << "HTTP " << res.status << " " << res.body << ": ";
    if (res.status != status) return failure << "expected status " << status;
    if (res.header("content-type") != "application/problem+json") {
        return failure << "content-type is '" << res.header("content-type") << "'";
    }
    nlohmann::json body;
    try {
        body = res.json();
    } catch (const std::exception& e) {
        return failure << "body is not JSON: " << e.what();
    }
    if (body.value("type", "") != type) return failure << "expected type " << type;
    if (body.value("status", 0) != status) return failure << "status member differs";
    if (!body.contains("title") || !body["title"].is_string()) return failure << "no title";
    if (!body.contains("detail") || !body["detail"].is_string()) return failure << "no detail";
    if (body.contains("errors")) {
        for (const auto& e : body["errors"]) {
            if (!e.contains("field") || !e["field"].is_string() || !e.contains("message") ||
                !e["message"].is_string()) {
                return failure << "malformed errors entry " << e.dump();
            }
        }
    }
    return ::testing::AssertionSuccess();
}

std::set<std::string> error_fields(const HttpResponse& res) {
    std::set<std::string> fields;
    try {
        for (const auto& e : res.json().value("errors", nlohmann::json::array())) {
            fields.insert(e.value("field", ""));
        }
    } catch (const std::exception&) {
        // Not a problem document at all: is_problem says so; no fields to compare.
    }
    return fields;
}

}  // namespace ordo::testing
