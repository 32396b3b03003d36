#pragma once

// CommandService: the Command API's routes and the in-process command bus.

#include <optional>
#include <string>
#include <variant>

#include "command/aggregate.hpp"
#include "command/executor.hpp"
#include "domain/commands.hpp"
#include "platform/core/log.hpp"
#include "platform/http/http.hpp"

namespace ordo::command {

// The command side: the REST routes of the Command API and the in-process command bus.
// Thread-safe; every request runs as one database transaction through the Executor.
class CommandService {
   public:
    CommandService(Executor& executor, platform::Logger log);

    void register_routes(platform::http::Router& router);

    // The in-process command bus. A command id already handled answers with its first
    // outcome and appends nothing. Every outcome is a value (a database that cannot be
    // reached is CommandFailed, a command that could not start CommandNotSent); throws only
    // KeyReused, for an id already used for a different command.
    domain::CommandOutcome send(const std::string& command_id,
                                const domain::InternalCommand& command,
                                const CommandContext& context);

   private:
    platform::http::Response receive_stock(platform::http::Request& request);
    platform::http::Response deposit(platform::http::Request& request);
    platform::http::Response place_order(platform::http::Request& request);
    platform::http::Response cancel_order(platform::http::Request& request);

    // Runs a unit for an HTTP request: Idempotency-Key, error mapping, headers.
    platform::http::Response run_http(
        platform::http::Request& request, const std::string& stream,
        const std::function<ApiResponse(eventstore::Session&, const CommandContext&)>& unit);

    Executor& executor_;
    platform::Logger log_;
};

}  // namespace ordo::command
