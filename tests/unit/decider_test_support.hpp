#pragma once

// Given-when-then scenarios for the deciders' unit tests.

#include <gtest/gtest.h>

#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "domain/decision.hpp"

namespace ordo::testing {

// The caller's file and line, so a failure points at the test. Like std::source_location,
// which clang 14 (and so clang-tidy) cannot compile against libstdc++ 12.
struct CallSite {
    const char* file;
    int line;
    // NOLINTNEXTLINE(google-explicit-constructor): built implicitly as a default argument
    CallSite(const char* file = __builtin_FILE(), int line = __builtin_LINE())
        : file(file), line(line) {}
};

// given(past events).when(command).then(new events | rejection | nothing).
// evolve, decide, event_type and encode_payload are found by argument-dependent lookup in
// the aggregate's namespace. Failures are reported at the caller's line.
template <class State, class Event>
class DeciderScenario {
   public:
    using Decision = domain::Decision<Event>;

    explicit DeciderScenario(const std::vector<Event>& history) {
        for (const Event& event : history) state_ = evolve(std::move(state_), event);
    }

    template <class Command>
    DeciderScenario& when(const Command& command) {
        decision_ = decide(state_, command);
        return *this;
    }

    DeciderScenario& then(const std::vector<Event>& expected, CallSite where = {}) {
        if (!decision_) return fail(where, "then() before when()");
        const auto* events = decided_events();
        if (events == nullptr) {
            fail(where, "expected events " + describe(expected) + ", got " + describe(*decision_));
        } else if (*events != expected) {
            fail(where, "expected events " + describe(expected) + ", got " + describe(*events));
        }
        return *this;
    }

    DeciderScenario& then_nothing(CallSite where = {}) { return then({}, where); }

    DeciderScenario& then_rejected(std::string_view code, CallSite where = {}) {
        if (!decision_) return fail(where, "then_rejected() before when()");
        if (!std::holds_alternative<domain::Rejection>(*decision_)) {
            fail(where,
                 "expected rejection " + std::string(code) + ", got " + describe(*decision_));
        } else if (const auto& rejection = std::get<domain::Rejection>(*decision_);
                   rejection.code != code) {
            fail(where, "expected rejection " + std::string(code) + ", got " + describe(rejection));
        }
        return *this;
    }

    // The state after the decided events, for checking derived figures. A copy: scenarios
    // are temporaries.
    State state() const {
        State state = state_;
        if (const auto* events = decided_events()) {
            for (const Event& event : *events) state = evolve(std::move(state), event);
        }
        return state;
    }

   private:
    const std::vector<Event>* decided_events() const {
        return decision_ ? std::get_if<std::vector<Event>>(&*decision_) : nullptr;
    }

    DeciderScenario& fail(const CallSite& where, const std::string& message) {
        ADD_FAILURE_AT(where.file, where.line) << message;
        return *this;
    }

    static std::string describe(const std::vector<Event>& events) {
        std::ostringstream out;
        out << "[";
        for (std::size_t i = 0; i < events.size(); ++i) {
            out << (i == 0 ? "" : ", ") << event_type(events[i]) << " "
                << encode_payload(events[i]).dump();
        }
        out << "]";
        return out.str();
    }

    static std::string describe(const domain::Rejection& rejection) {
        return "rejection " + rejection.code + " (" + rejection.message + ")";
    }

    static std::string describe(const Decision& decision) {
        return std::visit([](const auto& d) { return describe(d); }, decision);
    }

    State state_{};
    std::optional<Decision> decision_;
};

}  // namespace ordo::testing
