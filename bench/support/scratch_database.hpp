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

// The host list of the stack's PostgreSQL cluster `cluster` (ORDO_PG_SHARD_LOCATIONS, which a
// stack of several clusters writes: "0=host:port/ordo,1=..."), or "" for the first cluster
// and for a stack that runs only one.
inline std::string cluster_hosts(int cluster) {
    const auto locations = platform::env("ORDO_PG_SHARD_LOCATIONS").value_or("");
    const auto key = std::to_string(cluster) + "=";
    for (std::size_t start = 0; cluster > 0 && start < locations.size();) {
        auto end = locations.find(',', start);
        if (end == std::string::npos) end = locations.size();
        const auto item = locations.substr(start, end - start);
        if (item.rfind(key, 0) == 0) return item.substr(key.size(), item.find('/') - key.size());
        start = end + 1;
    }
    return "";
}

// ordo_bench_<tag>_<random>: created by the administrator, owned by and migrated as
// ordo_migrator, dropped (WITH FORCE) on destruction. On the stack's cluster `cluster` when it
// runs that many (ORDO_PG_SHARDS), else on its first.
class ScratchDatabase {
   public:
    explicit ScratchDatabase(const std::string& tag, int cluster = 0)
        : hosts_{cluster_hosts(cluster)},
          admin_url_{on_cluster(required("ORDO_PG_ADMIN_URL"))},
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
        return platform::with_database(on_cluster(required(setting)), name_);
    }

   private:
    std::string on_cluster(const std::string& url) const {
        if (hosts_.empty()) return url;
        const auto at = url.find('@');
        return url.substr(0, at + 1) + hosts_ + url.substr(url.find('/', at));
    }

    void drop() noexcept {
        try {
            pqxx::connection admin{admin_url_};
            pqxx::nontransaction tx{admin};
            tx.exec("DROP DATABASE IF EXISTS " + name_ + " WITH (FORCE)");
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench: dropping database %s: %s\n", name_.c_str(), e.what());
        }
    }

    std::string hosts_;
    std::string admin_url_;
    std::string name_;
};

}  // namespace ordo::bench
