// Migrations under an advisory lock: the ordo_migrations.applied table, the applied files
// checked against their checksums, then each new file in its own transaction.
#include "platform/pg/migrator.hpp"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "platform/pg/advisory_locks.hpp"
#include "platform/pg/session.hpp"

namespace ordo::platform::pg {
namespace {

constexpr std::int64_t kMigrationLockKey = advisory_locks::kMigrations;

std::string checksum(pqxx::connection& conn, const std::string& text) {
    pqxx::nontransaction tx{conn};
    return tx.exec_params1("SELECT encode(sha256(convert_to($1, 'UTF8')), 'hex')", text)[0]
        .as<std::string>();
}

}  // namespace

MigrationReport migrate(const std::string& url, const std::vector<Migration>& input,
                        const Logger& log) {
    auto migrations = input;
    std::sort(migrations.begin(), migrations.end(),
              [](const auto& a, const auto& b) { return a.version < b.version; });

    // Holds the migration lock for the whole run: never reconnected by itself.
    Session conn{url, "ordo-migrate"};
    {
        pqxx::nontransaction tx{conn};
        tx.exec_params("SELECT pg_advisory_lock($1)", kMigrationLockKey);
    }
    MigrationReport report;
    try {
        {
            pqxx::work tx{conn};
            tx.exec(
                "CREATE SCHEMA IF NOT EXISTS ordo_migrations;"
                "CREATE TABLE IF NOT EXISTS ordo_migrations.applied ("
                "  version integer PRIMARY KEY,"
                "  name text NOT NULL,"
                "  checksum text NOT NULL,"
                "  applied_at timestamptz NOT NULL DEFAULT now())");
            tx.commit();
        }
        std::map<int, std::pair<std::string, std::string>> applied;  // version -> name, sum
        {
            pqxx::nontransaction tx{conn};
            for (const auto& row :
                 tx.exec("SELECT version, name, checksum FROM ordo_migrations.applied")) {
                applied[row[0].as<int>()] = {row[1].as<std::string>(), row[2].as<std::string>()};
            }
        }
        for (const auto& [version, entry] : applied) {
            bool known = std::any_of(migrations.begin(), migrations.end(),
                                     [v = version](const auto& m) { return m.version == v; });
            if (!known) {
                throw MigrationError("the database has migration " + entry.first +
                                     " which this build of ordo does not know; upgrade ordo "
                                     "before migrating this database");
            }
        }
        for (const auto& m : migrations) {
            auto sum = checksum(conn, m.sql);
            auto found = applied.find(m.version);
            if (found != applied.end()) {
                if (found->second.second != sum) {
                    throw MigrationError(
                        "migration " + m.name + " was edited after it was applied (checksum " +
                        found->second.second.substr(0, 12) + " recorded, " + sum.substr(0, 12) +
                        " now); never edit an applied migration, add a new one");
                }
                report.already_applied.push_back(m.name);
                continue;
            }
            pqxx::work tx{conn};
            tx.exec(m.sql);
            tx.exec_params(
                "INSERT INTO ordo_migrations.applied (version, name, checksum) VALUES ($1, $2, $3)",
                m.version, m.name, sum);
            tx.commit();
            log.info("migration applied", {{"migration", m.name}});
            report.applied.push_back(m.name);
        }
    } catch (...) {
        try {
            pqxx::nontransaction tx{conn};
            tx.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
        } catch (const std::exception& e) {
            log.warn("could not release the migration lock; it ends with the session",
                     {{"error", e.what()}});
        }
        throw;
    }
    pqxx::nontransaction tx{conn};
    tx.exec_params("SELECT pg_advisory_unlock($1)", kMigrationLockKey);
    return report;
}

}  // namespace ordo::platform::pg
