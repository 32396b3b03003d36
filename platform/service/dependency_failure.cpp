// Answers the exception in flight: OutcomeUnknown, Overloaded, Unavailable or a transient
// database error becomes a logged 503; anything else is rethrown.
#include "platform/service/dependency_failure.hpp"

#include <exception>

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::platform {

http::Response answer_dependency_failure(const Logger& log, const TraceContext& trace,
                                         const FailureWords& words) {
    auto error = std::current_exception();
    try {
        std::rethrow_exception(error);
    } catch (const OutcomeUnknown& e) {
        log.log(LogLevel::warn, "outcome unknown", trace, {{"error", e.what()}});
        if (!words.outcome_unknown) return http::problem(503, "unavailable", words.unavailable);
        return http::problem(503, "outcome_unknown", *words.outcome_unknown);
    } catch (const Overloaded& e) {
        log.log(LogLevel::warn, "not started", trace, {{"error", e.what()}});
        return http::problem(503, "unavailable", words.overloaded);
    } catch (const Unavailable& e) {
        log.log(LogLevel::warn, "database unavailable", trace, {{"error", e.what()}});
        return http::problem(503, "unavailable", words.unavailable);
    } catch (const std::exception& e) {
        if (pg::classify(error) != FailureKind::transient) throw;
        log.log(LogLevel::warn, "transient database failure", trace, {{"error", e.what()}});
        return http::problem(503, "unavailable", words.unavailable);
    }
}

}  // namespace ordo::platform
