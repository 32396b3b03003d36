// The few error types that infrastructure failures become at adapter boundaries, and the one
// verdict on whether a failure is transient or permanent.
#pragma once

#include <stdexcept>
#include <string>

namespace ordo::platform {

// Infrastructure failures are translated at adapter boundaries into these few types.
// Whether a failure is worth retrying is decided once, here, and read by retries,
// breakers and dead letters alike.
enum class FailureKind { transient, permanent };

// A dependency (Postgres, NATS) cannot serve the request now; retrying later may work.
class Unavailable : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

// The work was not started: a bounded queue was full, or no connection came free before
// the caller's deadline. Nothing happened, so retrying is always safe; a saga step that
// meets this was never sent and has not used up an attempt.
class Overloaded : public Unavailable {
   public:
    using Unavailable::Unavailable;
};

// The work was sent and its commit may or may not have happened: the connection broke while
// the commit was under way. Only the store can tell; a client repeats the request under the
// same idempotency key (or command id) to learn the outcome without doing it twice.
class OutcomeUnknown : public Unavailable {
   public:
    using Unavailable::Unavailable;
};

// Input that can never succeed, whatever the retry.
class InvalidInput : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

class NotFound : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

}  // namespace ordo::platform
