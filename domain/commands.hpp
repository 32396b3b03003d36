#pragma once

// The commands one component sends the command side in-process (the saga processes' steps),
// the stream each one targets, their one JSON form, and the outcome of sending one.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "domain/decision.hpp"
#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"

namespace ordo::domain {

// The eight commands a saga issues. Each struct's kType names it in the JSON form.
using InternalCommand = std::variant<inventory::ReserveStock, inventory::ReleaseReservation,
                                     inventory::CommitReservation, payments::AuthorizePayment,
                                     payments::VoidAuthorization, payments::CapturePayment,
                                     orders::ConfirmOrder, orders::CancelOrder>;

// The stream the command is decided on (and appends to).
std::string target_stream(const InternalCommand& command);

// {"type": <kType>, ...the struct's fields by name}: the form a saga's StepScheduled event
// records, so it must stay byte-compatible with what existing streams hold.
nlohmann::json encode_command(const InternalCommand& command);

// Why a JSON command could not be read: an unknown or missing type, or a missing or
// mistyped field. Never thrown.
struct UnreadableCommand {
    std::string reason;
    bool operator==(const UnreadableCommand&) const = default;
};
// The inverse of encode_command. Extra fields are ignored (newer writers); integers must
// be JSON integers.
std::variant<InternalCommand, UnreadableCommand> decode_command(const nlohmann::json& json);

// --- outcomes ---------------------------------------------------------------------------

// Where a decided command landed. A command id already handled answers with its first
// outcome, marked `replayed`, and changes nothing.
struct CommandReceipt {
    std::string stream;
    std::int64_t version = 0;
    std::string position;  // consistency token; empty if the stream has no events
    bool replayed = false;
    bool operator==(const CommandReceipt&) const = default;
};

struct CommandSucceeded {
    CommandReceipt receipt;
    bool operator==(const CommandSucceeded&) const = default;
};
// A business "no" (or a command the command side cannot read): final, never retried.
struct CommandRejected {
    Rejection reason;
    CommandReceipt receipt;  // empty when the command never reached a stream
    bool operator==(const CommandRejected&) const = default;
};
// It may or may not have taken effect (the database was unreachable, a lock wait timed
// out): the same command id may be sent again, and takes effect at most once.
struct CommandFailed {
    std::string message;
    bool operator==(const CommandFailed&) const = default;
};
// The command side would not start it (its queues were full, or no connection came free in
// time): it certainly did nothing.
struct CommandNotSent {
    std::string message;
    bool operator==(const CommandNotSent&) const = default;
};

using CommandOutcome =
    std::variant<CommandSucceeded, CommandRejected, CommandFailed, CommandNotSent>;

}  // namespace ordo::domain
