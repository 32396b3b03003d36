// `ordo dead-letters list|retry|skip`: the operator's view of dead letters, through their owner.

#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "app/subcommands.hpp"
#include "platform/core/errors.hpp"
#include "platform/pg/session.hpp"
#include "projections/dead_letters.hpp"

namespace ordo::app {
namespace {

int list(pqxx::connection& conn, const DeadLetterOptions& options) {
    pqxx::nontransaction tx{conn};
    projections::DeadLetterFilter filter{.projection = options.projection, .limit = options.limit};
    if (!options.status.empty())
        filter.status = projections::parse_dead_letter_status(options.status);
    // One JSON object per line: easy to read, easy to pipe into jq.
    for (const auto& letter : projections::list_dead_letters(tx, filter)) {
        std::cout << nlohmann::json{{"id", letter.id},
                                    {"projection", letter.projection},
                                    {"partition", letter.partition},
                                    {"transaction_id", letter.transaction_id},
                                    {"global_position", letter.global_position},
                                    {"stream", letter.stream},
                                    {"version", letter.version},
                                    {"event_id", letter.event_id},
                                    {"type", letter.type},
                                    {"error", letter.error},
                                    {"attempts", letter.attempts},
                                    {"policy", letter.policy},
                                    {"status", letter.status},
                                    {"created_at", letter.created_at}}
                         .dump()
                  << "\n";
    }
    return 0;
}

int request(pqxx::connection& conn, std::int64_t id, projections::DeadLetterRequest what,
            const platform::Logger& log) {
    pqxx::work tx{conn};
    auto answer = projections::request_dead_letter(tx, id, what);
    switch (answer.kind) {
        case projections::DeadLetterAnswer::Kind::not_found:
            log.error("no such dead letter", {{"id", id}});
            return 4;
        case projections::DeadLetterAnswer::Kind::not_parked:
            log.error("only a parked dead letter can be retried or skipped",
                      {{"id", id}, {"status", answer.status}});
            return 5;
        case projections::DeadLetterAnswer::Kind::requested:
            break;
    }
    tx.commit();
    std::cout << nlohmann::json{{"id", id}, {"status", answer.status}}.dump() << "\n";
    log.info("requested; the projector owning the partition carries it out",
             {{"id", id}, {"status", answer.status}});
    return 0;
}

}  // namespace

int run_dead_letters(const DeadLetterOptions& options, const platform::Logger& log) {
    try {
        platform::pg::Session conn{options.database_url, "ordo-dead-letters"};
        if (options.action == "list") return list(conn, options);
        if (options.action == "retry") {
            return request(conn, options.id, projections::DeadLetterRequest::retry, log);
        }
        if (options.action == "skip") {
            return request(conn, options.id, projections::DeadLetterRequest::skip, log);
        }
        log.error("unknown dead-letters action", {{"action", options.action}});
        return 2;
    } catch (const std::exception& e) {
        log.error("dead-letters failed", {{"error", e.what()}});
        return 1;
    }
}

}  // namespace ordo::app
