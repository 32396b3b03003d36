// Two-phase commit gids and `ordo 2pc-recover`: lists orphaned prepared transactions and resolves
// them by the in-doubt rule, or commits or rolls one back by hand.

#include "app/two_phase.hpp"

#include <algorithm>
#include <cstdio>
#include <iostream>
#include <map>
#include <memory>
#include <set>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "platform/core/config.hpp"
#include "platform/core/errors.hpp"
#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"

namespace ordo::app::two_phase {
namespace {

constexpr std::size_t kGlobalIdLength = 32;
// SQLSTATE undefined_object: COMMIT/ROLLBACK PREPARED of a gid that is no longer there.
constexpr std::string_view kNoSuchGid = "42704";

bool is_lower_hex(char c) {
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

bool is_database_name(std::string_view name) {
    if (name.empty() || name.size() > kMaxDatabaseName) return false;
    if (!(name[0] == '_' || (name[0] >= 'a' && name[0] <= 'z'))) return false;
    return std::all_of(name.begin(), name.end(), [](char c) {
        return c == '_' || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
    });
}

std::vector<std::string_view> split(std::string_view text, char separator) {
    std::vector<std::string_view> parts;
    for (;;) {
        auto at = text.find(separator);
        parts.push_back(text.substr(0, at));
        if (at == std::string_view::npos) return parts;
        text.remove_prefix(at + 1);
    }
}

// What recovery found for each participant, in index order: why the rule decided so.
nlohmann::json states_of(const std::vector<ParticipantState>& states) {
    auto names = nlohmann::json::array();
    for (auto state : states) names.push_back(to_string(state));
    return names;
}

// Connections to the participants' databases, opened once per database. A database that
// cannot be reached is remembered as such, so its participants are `unknown`.
class Databases {
   public:
    explicit Databases(std::string server_url) : server_url_{std::move(server_url)} {}

    pqxx::connection* get(const std::string& database) {
        auto [it, inserted] = connections_.try_emplace(database);
        // A session that broke since is opened again (a Session never reopens by itself).
        if (inserted || (it->second && !it->second->is_open())) {
            try {
                it->second = std::make_unique<platform::pg::Session>(
                    platform::with_database(server_url_, database), "ordo-two-phase");
            } catch (const std::exception& e) {
                it->second.reset();
                errors_[database] = e.what();
            }
        }
        return it->second.get();
    }

    std::string error(const std::string& database) const {
        auto it = errors_.find(database);
        return it == errors_.end() ? std::string{} : it->second;
    }

   private:
    std::string server_url_;
    std::map<std::string, std::unique_ptr<platform::pg::Session>> connections_;
    std::map<std::string, std::string> errors_;
};

ParticipantState committed_or_absent(Databases& databases, const std::string& database,
                                     const std::string& gid, const platform::Logger& log) {
    auto* conn = databases.get(database);
    if (!conn) {
        log.warn("participant database unreachable",
                 {{"database", database}, {"gid", gid}, {"error", databases.error(database)}});
        return ParticipantState::unknown;
    }
    try {
        pqxx::read_transaction txn{*conn};
        auto row = txn.exec_params1(
            "SELECT EXISTS (SELECT 1 FROM " + std::string{kCommittedTable} + " WHERE gid = $1)",
            gid);
        return row[0].as<bool>() ? ParticipantState::committed : ParticipantState::absent;
    } catch (const std::exception& e) {
        log.warn("cannot read the participant's commit markers",
                 {{"database", database}, {"gid", gid}, {"error", e.what()}});
        return ParticipantState::unknown;
    }
}

struct GlobalTransaction {
    std::vector<ParticipantState> states;
    Decision decision = Decision::undecided;
    double youngest_prepared_age = 0;  // seconds; the coordinator may still be at work
};

// The decision for every Ordo global transaction with a prepared participant.
std::map<std::string, GlobalTransaction> assess(const std::vector<PreparedTransaction>& prepared,
                                                Databases& databases, const platform::Logger& log) {
    std::set<std::string> prepared_gids;
    for (const auto& p : prepared) prepared_gids.insert(p.gid);
    std::map<std::string, GlobalTransaction> globals;
    for (const auto& p : prepared) {
        auto gid = parse_gid(p.gid);
        if (!gid) continue;
        auto [it, first] = globals.try_emplace(gid->global_id);
        auto& global = it->second;
        global.youngest_prepared_age =
            first ? p.age_seconds : std::min(global.youngest_prepared_age, p.age_seconds);
        if (!first) continue;
        for (std::size_t i = 0; i < gid->databases.size(); ++i) {
            auto peer = *gid;
            peer.participant = i;
            auto peer_gid = format_gid(peer);
            global.states.push_back(
                prepared_gids.contains(peer_gid)
                    ? ParticipantState::prepared
                    : committed_or_absent(databases, peer.database(), peer_gid, log));
        }
        global.decision = decide(global.states);
    }
    return globals;
}

enum class Outcome { done, already_resolved };

Outcome finish(Databases& databases, const PreparedTransaction& p, bool commit) {
    auto* conn = databases.get(p.database);
    if (!conn) throw platform::Unavailable{databases.error(p.database)};
    try {
        pqxx::nontransaction txn{*conn};
        // COMMIT PREPARED takes a literal, not a parameter; the gid was read from
        // pg_prepared_xacts or checked against is_safe_gid, and is quoted by the connection.
        txn.exec(std::string{commit ? "COMMIT PREPARED " : "ROLLBACK PREPARED "} +
                 txn.quote(p.gid));
        return Outcome::done;
    } catch (const pqxx::sql_error&) {
        if (platform::pg::sqlstate_of(std::current_exception()) == kNoSuchGid) {
            return Outcome::already_resolved;
        }
        throw;
    }
}

void print_row(const PreparedTransaction& p, std::string_view decision, std::string_view outcome,
               bool json) {
    if (json) {
        nlohmann::json row{{"gid", p.gid},
                           {"database", p.database},
                           {"owner", p.owner},
                           {"prepared_at", p.prepared_at},
                           {"age_seconds", p.age_seconds},
                           {"decision", decision}};
        if (!outcome.empty()) row["outcome"] = outcome;
        std::cout << row.dump() << '\n';
        return;
    }
    std::printf("%-60s %-24s %-14s %-32s %10.1f  %-10s %s\n", p.gid.c_str(), p.database.c_str(),
                p.owner.c_str(), p.prepared_at.c_str(), p.age_seconds,
                std::string{decision}.c_str(), std::string{outcome}.c_str());
}

void print_header(bool json, bool resolving) {
    if (json) return;
    std::printf("%-60s %-24s %-14s %-32s %10s  %-10s %s\n", "GID", "DATABASE", "OWNER",
                "PREPARED AT", "AGE (S)", "DECISION", resolving ? "OUTCOME" : "");
}

int resolve_by_hand(const RecoverOptions& options, const platform::Logger& log) {
    const bool commit = options.commit_gid.has_value();
    const auto& gid = commit ? *options.commit_gid : *options.rollback_gid;
    if (!is_safe_gid(gid)) {
        log.error("invalid gid: it must be 1 to 200 characters of A-Z a-z 0-9 . _ : , + -");
        return 2;
    }
    auto prepared = list_prepared(options.server_url);
    auto it = std::find_if(prepared.begin(), prepared.end(),
                           [&](const PreparedTransaction& p) { return p.gid == gid; });
    if (it == prepared.end()) {
        log.error("no prepared transaction has this gid (already resolved?)", {{"gid", gid}});
        return 1;
    }
    Databases databases{options.server_url};
    if (parse_gid(gid)) {
        auto globals = assess(prepared, databases, log);
        auto decision = globals.at(parse_gid(gid)->global_id).decision;
        if (decision != Decision::undecided && (decision == Decision::commit) != commit) {
            log.warn(
                "resolving against the decision rule; the global transaction will not be "
                "atomic",
                {{"gid", gid}, {"rule", to_string(decision)}});
        }
    }
    auto outcome = finish(databases, *it, commit);
    print_header(options.json, true);
    print_row(
        *it, commit ? "commit" : "rollback",
        outcome == Outcome::done ? (commit ? "committed" : "rolled back") : "already resolved",
        options.json);
    log.info(commit ? "committed prepared transaction" : "rolled back prepared transaction",
             {{"gid", gid}, {"database", it->database}});
    return 0;
}

int list_and_resolve(const RecoverOptions& options, const platform::Logger& log) {
    auto prepared = list_prepared(options.server_url);
    Databases databases{options.server_url};
    auto globals = assess(prepared, databases, log);
    const bool resolving = options.resolve_older_than_seconds.has_value();
    int failures = 0;
    print_header(options.json, resolving);
    for (const auto& p : prepared) {
        auto gid = parse_gid(p.gid);
        if (!gid) {
            print_row(p, "foreign", resolving ? "left: not an Ordo gid" : "", options.json);
            continue;
        }
        const auto& global = globals.at(gid->global_id);
        auto decision = to_string(global.decision);
        if (!resolving) {
            print_row(p, decision, "", options.json);
            continue;
        }
        if (global.youngest_prepared_age < *options.resolve_older_than_seconds) {
            print_row(p, decision, "left: coordinator may be at work", options.json);
            continue;
        }
        if (global.decision == Decision::undecided) {
            log.error(
                "in-doubt global transaction left undecided: a participant's state is "
                "unknown",
                {{"gid", p.gid}, {"participants", states_of(global.states)}});
            print_row(p, decision, "left: undecided", options.json);
            ++failures;
            continue;
        }
        const bool commit = global.decision == Decision::commit;
        try {
            auto outcome = finish(databases, p, commit);
            print_row(p, decision,
                      outcome == Outcome::done ? (commit ? "committed" : "rolled back")
                                               : "already resolved",
                      options.json);
            log.info(commit ? "committed in-doubt participant" : "rolled back in-doubt participant",
                     {{"gid", p.gid},
                      {"database", p.database},
                      {"participants", states_of(global.states)}});
        } catch (const std::exception& e) {
            log.error("could not resolve prepared transaction",
                      {{"gid", p.gid}, {"error", e.what()}});
            print_row(p, decision, "failed", options.json);
            ++failures;
        }
    }
    return failures == 0 ? 0 : 1;
}

}  // namespace

std::string format_gid(const ParticipantGid& gid) {
    if (gid.global_id.size() != kGlobalIdLength ||
        !std::all_of(gid.global_id.begin(), gid.global_id.end(), is_lower_hex)) {
        throw platform::InvalidInput{"a global id is 32 lowercase hex digits"};
    }
    if (gid.databases.size() < 2 || gid.databases.size() > kMaxParticipants) {
        throw platform::InvalidInput{"a global transaction has 2 to 8 participants"};
    }
    if (gid.participant >= gid.databases.size()) {
        throw platform::InvalidInput{"participant index out of range"};
    }
    std::string text{kGidPrefix};
    text += gid.global_id + ":" + std::to_string(gid.participant) + ":";
    for (std::size_t i = 0; i < gid.databases.size(); ++i) {
        if (!is_database_name(gid.databases[i])) {
            throw platform::InvalidInput{"database name outside [a-z_][a-z0-9_]{0,62}: " +
                                         gid.databases[i]};
        }
        text += (i ? "," : "") + gid.databases[i];
    }
    if (text.size() > kMaxGidLength) throw platform::InvalidInput{"gid longer than 200 bytes"};
    return text;
}

std::optional<ParticipantGid> parse_gid(std::string_view text) {
    if (text.size() > kMaxGidLength || !text.starts_with(kGidPrefix)) return std::nullopt;
    auto parts = split(text.substr(kGidPrefix.size()), ':');
    if (parts.size() != 3) return std::nullopt;
    ParticipantGid gid;
    gid.global_id = std::string{parts[0]};
    auto index = parts[1];
    if (index.size() != 1 || index[0] < '0' || index[0] > '9') return std::nullopt;
    gid.participant = static_cast<std::size_t>(index[0] - '0');
    for (auto database : split(parts[2], ',')) gid.databases.emplace_back(database);
    try {
        // One spelling per gid: what does not format back to itself is not ours.
        if (format_gid(gid) != text) return std::nullopt;
    } catch (const platform::InvalidInput&) {
        return std::nullopt;
    }
    return gid;
}

bool is_safe_gid(std::string_view gid) {
    if (gid.empty() || gid.size() > kMaxGidLength) return false;
    return std::all_of(gid.begin(), gid.end(), [](char c) {
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
               c == '.' || c == '_' || c == ':' || c == ',' || c == '+' || c == '-';
    });
}

Decision decide(const std::vector<ParticipantState>& participants) {
    if (participants.empty()) return Decision::undecided;
    auto any = [&](ParticipantState state) {
        return std::find(participants.begin(), participants.end(), state) != participants.end();
    };
    if (any(ParticipantState::absent)) return Decision::rollback;
    if (any(ParticipantState::unknown)) return Decision::undecided;
    return Decision::commit;
}

std::string_view to_string(Decision decision) {
    switch (decision) {
        case Decision::commit:
            return "commit";
        case Decision::rollback:
            return "rollback";
        case Decision::undecided:
            break;
    }
    return "undecided";
}

std::string_view to_string(ParticipantState state) {
    switch (state) {
        case ParticipantState::prepared:
            return "prepared";
        case ParticipantState::committed:
            return "committed";
        case ParticipantState::absent:
            return "absent";
        case ParticipantState::unknown:
            break;
    }
    return "unknown";
}

std::vector<PreparedTransaction> list_prepared(const std::string& server_url) {
    platform::pg::Session conn{server_url, "ordo-two-phase"};
    pqxx::read_transaction txn{conn};
    std::vector<PreparedTransaction> prepared;
    for (const auto& row :
         txn.exec("SELECT gid, database::text AS database, owner::text AS owner, "
                  "prepared::text AS prepared_at, "
                  "extract(epoch FROM clock_timestamp() - prepared)::float8 AS age_seconds "
                  "FROM pg_prepared_xacts ORDER BY prepared, gid")) {
        prepared.push_back({row["gid"].as<std::string>(), row["database"].as<std::string>(),
                            row["owner"].as<std::string>(), row["prepared_at"].as<std::string>(),
                            row["age_seconds"].as<double>()});
    }
    return prepared;
}

int run_recover(const RecoverOptions& options, const platform::Logger& log) {
    int modes = (options.commit_gid ? 1 : 0) + (options.rollback_gid ? 1 : 0) +
                (options.resolve_older_than_seconds ? 1 : 0);
    if (modes > 1) {
        log.error("give at most one of --commit, --rollback and --resolve-older-than");
        return 2;
    }
    try {
        if (options.commit_gid || options.rollback_gid) return resolve_by_hand(options, log);
        return list_and_resolve(options, log);
    } catch (const std::exception& e) {
        log.error("2pc-recover failed", {{"error", e.what()}});
        return 1;
    }
}

}  // namespace ordo::app::two_phase
