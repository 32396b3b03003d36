// What the benchmarks that run in-process share: settings the stack's stack.env gives, and a
// fresh, migrated database of a random name that is dropped when the benchmark ends, also
// when a measurement failed.
#pragma once

#include <cstdio>
#include <stdexcept>
#include <string>

#include <pqxx/pqxx>

#include "eventstore/schema.hpp"
#include "platform/core/config.hpp"
#include "platform/core/log.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::bench {

// A setting of the stack (ORDO_PG_ADMIN_URL, ORDO_MIGRATOR_URL...); throws when unset.
inline std::string required(const char* name) {
    auto v = platform::env(name);
    if (!v) throw std::runtime_error(std::string{name} + " is not set (source the stack.env)");
    return *v;
}

// ordo_bench_<tag>_<random>: created by the administrator, owned by and migrated as
// ordo_migrator, dropped (WITH FORCE) on destruction.
class ScratchDatabase {
   public:
    explicit ScratchDatabase(const std::string& tag)
        : admin_url_{required("ORDO_PG_ADMIN_URL")},
          name_{"ordo_bench_" + tag + "_" + platform::new_uuid().substr(0, 8)} {
        {
            pqxx::connection admin{admin_url_};
            pqxx::nontransaction tx{admin};
            tx.exec("CREATE DATABASE " + name_ + " OWNER ordo_migrator");
        }
        try {
            platform::pg::migrate(url("ORDO_MIGRATOR_URL"), eventstore::migrations(),
                                  platform::Logger::null_logger());
        } catch (...) {
            drop();
            throw;
        }
    }
    ~ScratchDatabase() { drop(); }
    ScratchDatabase(const ScratchDatabase&) = delete;
    ScratchDatabase& operator=(const ScratchDatabase&) = delete;

    const std::string& name() const { return name_; }
    // The stack's URL in the setting `name` (ORDO_COMMAND_DATABASE_URL...), on this database.
    std::string url(const char* setting) const {
        return platform::with_database(required(setting), name_);
    }

   private:
    void drop() noexcept {
        try {
            pqxx::connection admin{admin_url_};
            pqxx::nontransaction tx{admin};
            tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench: dropping database %s: %s\n", name_.c_str(), e.what());
        }
    }

    std::string admin_url_;
    std::string name_;
};

}  // namespace ordo::bench
