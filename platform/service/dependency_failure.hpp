// The one mapping from a failed dependency (PostgreSQL, NATS) to a 503 answer, shared by every
// service, each naming in its own words what was left undone.
#pragma once

#include <optional>
#include <string>

#include "platform/core/log.hpp"
#include "platform/http/http.hpp"

namespace ordo::platform {

// How a service names what a failed dependency left undone, in its own words.
struct FailureWords {
    std::string unavailable;  // the dependency cannot serve now; nothing is known to be done
    std::string overloaded;   // nothing was started (a bounded queue or pool was full)
    // A commit was under way when the connection broke. Unset for work that commits nothing
    // (reads): such a failure is then answered as `unavailable`.
    std::optional<std::string> outcome_unknown;
};

// The one mapping from a dependency's failure to a request's answer, shared by every service:
// Overloaded and Unavailable (and any exception pg::classify calls transient) become 503
// `unavailable`; OutcomeUnknown becomes 503 `outcome_unknown`. Each is logged as a warning
// with the request's trace. Call it only inside a catch block: it rethrows the exception in
// flight when that is not a dependency failure, so bugs still reach the server's 500 path.
http::Response answer_dependency_failure(const Logger& log, const TraceContext& trace,
                                         const FailureWords& words);

}  // namespace ordo::platform
