// A gtest assertion that a response is an RFC 9457 problem document of a status and type,
// and the fields its errors name.
#pragma once

#include <set>
#include <string>

#include <gtest/gtest.h>

#include "tests/support/http_client.hpp"

namespace ordo::testing {

// The response is an RFC 9457 problem document of API.md: this status and type, JSON with
// title and detail, and well-formed field errors if it lists any.
::testing::AssertionResult is_problem(const HttpResponse& res, int status, const std::string& type);

// The `field` of every entry of a problem document's `errors`; empty for anything else.
std::set<std::string> error_fields(const HttpResponse& res);

}  // namespace ordo::testing
