#pragma once

#include <optional>
#include <string>
#include <variant>

#include "command/aggregate.hpp"
#include "command/executor.hpp"
#include "platform/http.hpp"
#include "platform/log.hpp"

namespace ordo::command {

// Commands that other components (the saga runtime) send in-process. Each carries a
// command id: a command id already handled returns its first outcome and appends nothing.
using InternalCommand =
    std::variant<domain::inventory::ReserveStock, domain::inventory::ReleaseReservation,
                 domain::inventory::CommitReservation, domain::payments::AuthorizePayment,
                 domain::payments::VoidAuthorization, domain::payments::CapturePayment,
                 domain::orders::ConfirmOrder, domain::orders::CancelOrder>;

struct BusOutcome {
    std::optional<domain::Rejection> rejection;  // a business "no"
    std::string stream;
    std::int64_t version = 0;
    std::string position;  // consistency token; empty if the stream has no events
    bool replayed = false;
};

// The command side: the REST routes of the Command API and the in-process command bus.
// Thread-safe; every request runs as one database transaction through the Executor.
class CommandService {
   public:
    CommandService(Executor& executor, platform::Logger log);

    void register_routes(platform::http::Router& router);

    // Throws platform::Unavailable when the database cannot be reached.
    BusOutcome send(const std::string& command_id, const InternalCommand& command,
                    const CommandContext& context);

   private:
    platform::http::Response receive_stock(platform::http::Request& request);
    platform::http::Response deposit(platform::http::Request& request);
    platform::http::Response place_order(platform::http::Request& request);
    platform::http::Response cancel_order(platform::http::Request& request);

    // Runs a unit for an HTTP request: Idempotency-Key, error mapping, headers.
    platform::http::Response run_http(
        platform::http::Request& request, const std::string& stream,
        const std::function<Reply(eventstore::Session&, const CommandContext&)>& unit);

    Executor& executor_;
    platform::Logger log_;
};

}  // namespace ordo::command
