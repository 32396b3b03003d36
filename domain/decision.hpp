#pragma once

// What a decider returns for a command: the events to append, or a business rejection.

#include <string>
#include <variant>
#include <vector>

namespace ordo::domain {

// A business "no": returned as a value, never thrown. `code` is stable and machine-readable
// (the command service maps it to an HTTP status); `message` is for humans.
struct Rejection {
    std::string code;
    std::string message;

    bool operator==(const Rejection&) const = default;
};

// The outcome of deciding a command: the events to append, or a rejection. An empty
// vector means the command was already carried out (an idempotent repeat): append nothing.
template <class Event>
using Decision = std::variant<std::vector<Event>, Rejection>;

}  // namespace ordo::domain
