#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "app/commands.hpp"
#include "platform/errors.hpp"
#include "projections/dead_letters.hpp"

namespace ordo::app {
namespace {

constexpr const char* kUtc = "'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"'";

int list(pqxx::connection& conn, const DeadLetterOptions& options) {
    pqxx::nontransaction tx{conn};
    auto rows = tx.exec_params(
        std::string{"SELECT id, projection, partition, transaction_id::text AS txid, "
                    "global_position, stream_id, stream_version, event_id::text, event_type, "
                    "error, attempts, policy, status, to_char(created_at AT TIME ZONE 'UTC', "} +
            kUtc +
            ") FROM ordo.dead_letters WHERE ($1::text IS NULL OR projection = $1) AND "
            "($2::text IS NULL OR status = $2) ORDER BY id LIMIT $3",
        options.projection.empty() ? nullptr : options.projection.c_str(),
        options.status.empty() ? nullptr : options.status.c_str(), options.limit);
    // One JSON object per line: easy to read, easy to pipe into jq.
    for (const auto& row : rows) {
        std::cout << nlohmann::json{{"id", row[0].as<std::int64_t>()},
                                    {"projection", row[1].as<std::string>()},
                                    {"partition", row[2].as<int>()},
                                    {"transaction_id", row[3].as<std::string>()},
                                    {"global_position", row[4].as<std::int64_t>()},
                                    {"stream", row[5].as<std::string>()},
                                    {"version", row[6].as<std::int64_t>()},
                                    {"event_id", row[7].as<std::string>()},
                                    {"type", row[8].as<std::string>()},
                                    {"error", row[9].as<std::string>()},
                                    {"attempts", row[10].as<int>()},
                                    {"policy", row[11].as<std::string>()},
                                    {"status", row[12].as<std::string>()},
                                    {"created_at", row[13].as<std::string>()}}
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
        pqxx::connection conn{options.database_url};
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
