// The Command API's routes and the in-process command bus: request bodies, Idempotency-Key,
// rejections mapped to problem responses, and bus outcomes as the command log records them.

#include "command/service.hpp"
#include "domain/overloaded.hpp"

#include <set>

#include "command/validation.hpp"
#include "domain/ids.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/partition.hpp"
#include "platform/pg/pg.hpp"
#include "platform/service/dependency_failure.hpp"

namespace ordo::command {
namespace {

using domain::Overloaded;

using platform::http::Access;
using platform::http::problem;
using platform::http::Request;
using platform::http::Response;

// The one table from a decider's rejection code to the API's problem type.
std::pair<int, std::string> problem_for(const domain::Rejection& rejection) {
    static const std::map<std::string, std::pair<int, std::string>> kTable = {
        {"order_exists", {409, "conflict"}},
        {"order_confirmed", {409, "conflict"}},
        {"order_cancelled", {409, "conflict"}},
        {"order_not_found", {404, "not_found"}},
        {"version_mismatch", {412, "version_mismatch"}},
    };
    if (auto it = kTable.find(rejection.code); it != kTable.end()) return it->second;
    return {422, "validation_failed"};
}

ApiResponse rejected(const domain::Rejection& rejection) {
    auto [status, type] = problem_for(rejection);
    auto response = problem(status, type, rejection.message);
    return ApiResponse{status, nlohmann::json::parse(response.body), false, false};
}

ApiResponse accepted(int status, nlohmann::json body, const std::string& stream,
                     const Executed& done) {
    body["stream"] = stream;
    body["version"] = done.version;
    body["position"] = done.checkpoint ? done.checkpoint->token() : "";
    return ApiResponse{status, std::move(body), false, done.appended};
}

Response invalid(std::vector<platform::http::FieldError> errors) {
    return problem(422, "validation_failed", "the request has invalid fields", std::move(errors));
}

// Reads the JSON object body of a command; a response when it cannot.
std::variant<nlohmann::json, Response> read_body(const Request& request, bool optional = false) {
    if (optional && request.body.empty()) return nlohmann::json::object();
    if (!is_json_content_type(request.header("content-type"))) {
        return problem(415, "unsupported_media_type", "send Content-Type: application/json");
    }
    std::string error;
    auto body = parse_body(request.body, error);
    if (!body) return problem(400, "malformed_json", "the body is not valid JSON: " + error);
    if (!body->is_object()) return problem(400, "malformed_json", "the body must be a JSON object");
    return std::move(*body);
}

std::optional<Response> check_path_id(const Request& request, const char* name) {
    if (domain::is_valid_id(request.params.at(name))) return std::nullopt;
    return invalid({{std::string{"path."} + name, "must be 1 to 64 characters of [A-Za-z0-9._-]"}});
}

}  // namespace

CommandService::CommandService(Executor& executor, platform::Logger log)
    : executor_{executor}, log_{std::move(log)} {}

void CommandService::register_routes(platform::http::Router& router) {
    router.add("POST", "/v1/inventory/{sku}/receipts", Access::commands,
               [this](Request& r) { return receive_stock(r); });
    router.add("POST", "/v1/accounts/{account_id}/deposits", Access::commands,
               [this](Request& r) { return deposit(r); });
    router.add("POST", "/v1/orders", Access::commands,
               [this](Request& r) { return place_order(r); });
    router.add("POST", "/v1/orders/{order_id}/cancel", Access::commands,
               [this](Request& r) { return cancel_order(r); });
}

Response CommandService::run_http(
    Request& request, const std::string& stream,
    const std::function<ApiResponse(eventstore::Session&, const CommandContext&)>& unit) {
    std::optional<Dedup> dedup;
    auto key = request.header("idempotency-key");
    if (key) {
        if (!is_valid_idempotency_key(*key)) {
            return invalid({{"Idempotency-Key", "must be 1 to 255 visible ASCII characters"}});
        }
        // Keys belong to the caller, by its token's name: the same key from two callers names
        // two requests, and a caller keeps its keys when its token is rotated.
        // What was asked, by route and decoded parameters, so /sku%2D1 and /sku-1 are one.
        std::string asked = request.method + "\n" + request.route;
        for (const auto& [name, value] : request.params) asked += "\n" + name + "=" + value;
        dedup = Dedup{"http:" + request.caller + ":" + *key, asked + "\n" + request.body};
    }
    auto command_id = platform::new_uuid();
    CommandContext context{request.trace, key ? *key : command_id, key ? *key : command_id,
                           command_id, request.caller};
    try {
        auto reply = executor_.run(
            stream, dedup, [&](eventstore::Session& session) { return unit(session, context); });
        Response response;
        response.status = reply.status;
        response.content_type =
            reply.status >= 400 ? "application/problem+json" : "application/json";
        response.body = reply.body.dump();
        if (reply.replayed) response.headers.emplace_back("Idempotent-Replayed", "true");
        return response;
    } catch (const KeyReused& e) {
        return problem(422, "idempotency_key_reused", e.what());
    } catch (const eventstore::ConcurrencyConflict&) {
        return problem(503, "unavailable", "the stream is busy; retry shortly");
    } catch (...) {
        return platform::answer_dependency_failure(
            log_, request.trace,
            {.unavailable = "the event store is unavailable; retry shortly",
             .overloaded = "too many commands are waiting for this stream or for the database; "
                           "nothing was done, retry shortly",
             .outcome_unknown =
                 key ? "the connection to the event store broke while the command was "
                       "committing: it may or may not have taken effect; repeat it with the same "
                       "Idempotency-Key to learn which"
                     : "the connection to the event store broke while the command was "
                       "committing: it may or may not have taken effect; read the resource "
                       "before repeating it (an Idempotency-Key makes a repeat safe)"});
    }
}

Response CommandService::receive_stock(Request& request) {
    if (auto bad = check_path_id(request, "sku")) return *bad;
    auto body = read_body(request);
    if (auto* r = std::get_if<Response>(&body)) return *r;
    auto decoded = decode_receive_stock(request.params.at("sku"), std::get<nlohmann::json>(body));
    if (auto* errors = std::get_if<std::vector<FieldError>>(&decoded)) return invalid(*errors);
    const auto& command = std::get<domain::inventory::ReceiveStock>(decoded);
    auto stream = domain::inventory_stream(command.sku);
    return run_http(request, stream, [&](eventstore::Session& session, const CommandContext& ctx) {
        auto done = execute<InventoryTraits>(session, stream, command, ctx);
        return done.rejection ? rejected(*done.rejection)
                              : accepted(200, nlohmann::json::object(), stream, done);
    });
}

Response CommandService::deposit(Request& request) {
    if (auto bad = check_path_id(request, "account_id")) return *bad;
    auto body = read_body(request);
    if (auto* r = std::get_if<Response>(&body)) return *r;
    auto decoded = decode_deposit(request.params.at("account_id"), std::get<nlohmann::json>(body));
    if (auto* errors = std::get_if<std::vector<FieldError>>(&decoded)) return invalid(*errors);
    const auto& command = std::get<domain::payments::Deposit>(decoded);
    auto stream = domain::account_stream(command.account_id);
    return run_http(request, stream, [&](eventstore::Session& session, const CommandContext& ctx) {
        auto done = execute<AccountTraits>(session, stream, command, ctx);
        return done.rejection ? rejected(*done.rejection)
                              : accepted(200, nlohmann::json::object(), stream, done);
    });
}

Response CommandService::place_order(Request& request) {
    auto body = read_body(request);
    if (auto* r = std::get_if<Response>(&body)) return *r;
    auto decoded = decode_place_order(std::get<nlohmann::json>(body), platform::new_uuid);
    if (auto* errors = std::get_if<std::vector<FieldError>>(&decoded)) return invalid(*errors);
    const auto& command = std::get<domain::orders::PlaceOrder>(decoded);
    const auto& id = command.order_id;
    auto stream = domain::order_stream(id);
    return run_http(request, stream, [&](eventstore::Session& session, const CommandContext& ctx) {
        auto done = execute<OrderTraits>(session, stream, command, ctx);
        return done.rejection ? rejected(*done.rejection)
                              : accepted(202, {{"order_id", id}}, stream, done);
    });
}

Response CommandService::cancel_order(Request& request) {
    if (auto bad = check_path_id(request, "order_id")) return *bad;
    auto body = read_body(request, true);
    if (auto* r = std::get_if<Response>(&body)) return *r;
    auto decoded = decode_cancellation(request.params.at("order_id"),
                                       std::get<nlohmann::json>(body), request.header("if-match"));
    if (auto* errors = std::get_if<std::vector<FieldError>>(&decoded)) return invalid(*errors);
    const auto& cancellation = std::get<Cancellation>(decoded);
    const auto& command = cancellation.command;
    const auto& if_match = cancellation.if_match;
    const auto& id = command.order_id;
    auto stream = domain::order_stream(id);
    return run_http(request, stream, [&](eventstore::Session& session, const CommandContext& ctx) {
        auto done = execute<OrderTraits>(
            session, stream, command, ctx,
            [&](const Loaded<OrderTraits>& loaded) -> std::optional<domain::Rejection> {
                if (loaded.version == 0)
                    return domain::Rejection{"order_not_found", "no order " + id};
                if (if_match && *if_match != loaded.version) {
                    return domain::Rejection{
                        "version_mismatch",
                        "the order is at version " + std::to_string(loaded.version)};
                }
                return std::nullopt;
            });
        return done.rejection ? rejected(*done.rejection)
                              : accepted(202, {{"order_id", id}}, stream, done);
    });
}

namespace {

// What the command log keeps of a bus command's outcome, and back: a replay answers with
// the body the first run recorded.
nlohmann::json bus_record(const std::string& stream, const Executed& done) {
    nlohmann::json body = {{"stream", stream},
                           {"version", done.version},
                           {"position", done.checkpoint ? done.checkpoint->token() : ""}};
    if (done.rejection) {
        body["rejection"] = {{"code", done.rejection->code}, {"message", done.rejection->message}};
    }
    return body;
}

domain::CommandOutcome bus_outcome(const ApiResponse& reply) {
    domain::CommandReceipt receipt{reply.body.value("stream", ""),
                                   reply.body.value("version", std::int64_t{0}),
                                   reply.body.value("position", ""), reply.replayed};
    if (reply.body.contains("rejection")) {
        const auto& rejection = reply.body["rejection"];
        return domain::CommandRejected{
            {rejection.value("code", ""), rejection.value("message", "")}, std::move(receipt)};
    }
    return domain::CommandSucceeded{std::move(receipt)};
}

// A fingerprint of what a command asks, for its command-log record (stored: a change makes
// an id sent before it look reused).
std::string fingerprint(const domain::InternalCommand& command) {
    using namespace domain;
    return std::visit(
        Overloaded{
            [](const inventory::ReserveStock& c) {
                return "reserve " + c.order_id + " " + std::to_string(c.quantity);
            },
            [](const inventory::ReleaseReservation& c) { return "release " + c.order_id; },
            [](const inventory::CommitReservation& c) { return "commit " + c.order_id; },
            [](const payments::AuthorizePayment& c) {
                return "authorize " + c.order_id + " " + std::to_string(c.amount);
            },
            [](const payments::VoidAuthorization& c) { return "void " + c.order_id; },
            [](const payments::CapturePayment& c) { return "capture " + c.order_id; },
            [](const orders::ConfirmOrder&) { return std::string{"confirm"}; },
            [](const orders::CancelOrder& c) { return "cancel " + c.reason; },
        },
        command);
}

}  // namespace

domain::CommandOutcome CommandService::send(const std::string& command_id,
                                            const domain::InternalCommand& command,
                                            const CommandContext& context) {
    using namespace domain;
    const auto stream = target_stream(command);
    auto ctx = context;
    ctx.command_id = command_id;
    try {
        return bus_outcome(executor_.run(
            stream, Dedup{"cmd:" + command_id, stream + "\n" + fingerprint(command)},
            [&](eventstore::Session& session) {
                auto done = std::visit(
                    [&](const auto& c) -> Executed {
                        using C = std::decay_t<decltype(c)>;
                        if constexpr (std::is_constructible_v<inventory::Command, C>) {
                            return execute<InventoryTraits>(session, stream, c, ctx);
                        } else if constexpr (std::is_constructible_v<payments::Command, C>) {
                            return execute<AccountTraits>(session, stream, c, ctx);
                        } else {
                            return execute<OrderTraits>(session, stream, c, ctx);
                        }
                    },
                    command);
                return ApiResponse{.body = bus_record(stream, done), .appended = done.appended};
            }));
    } catch (const platform::Overloaded& e) {
        return CommandNotSent{e.what()};
    } catch (const eventstore::PartitionFenced& e) {
        // The stream's partition is paused by a move: nothing was written, and the step
        // has not used up an attempt.
        return CommandNotSent{e.what()};
    } catch (const platform::Unavailable& e) {
        return CommandFailed{e.what()};
    } catch (const eventstore::ConcurrencyConflict& e) {
        return CommandFailed{std::string{"stream busy: "} + e.what()};
    } catch (const platform::InvalidInput& e) {
        // Ids the event store refuses: no retry would change that.
        return CommandRejected{{"invalid_command", e.what()}, {}};
    }
}

}  // namespace ordo::command
