// Test stack settings from the environment or stack.env, and each test's database created,
// migrated and dropped, with its URL for every service role.
#include "tests/support/test_database.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/schema.hpp"
#include "platform/core/config.hpp"
#include "platform/core/trace.hpp"

namespace ordo::testing {

std::optional<std::string> find_stack_setting(const char* name) {
    if (auto value = platform::env(name)) return *value;
    auto dir =
        platform::env("ORDO_STACK_DIR").value_or(std::string{ORDO_SOURCE_DIR} + "/.ordo/test");
    try {
        auto values = platform::read_env_file(dir + "/stack.env");
        if (auto it = values.find(name); it != values.end()) return it->second;
    } catch (const std::exception&) {
    }
    return std::nullopt;
}

std::string stack_setting(const char* name) {
    if (auto value = find_stack_setting(name)) return *value;
    throw std::runtime_error(std::string{name} +
                             " is not set and no test stack was found; start one with "
                             "`ORDO_STACK_DIR=.ordo/test ORDO_PG_SHARDS=2 deploy/stack.sh start`");
}

namespace {

// "host:port" of the stack's cluster `cluster`, from ORDO_PG_SHARD_LOCATIONS
// ("0=127.0.0.1:25432/ordo,1=127.0.0.1:25433/ordo").
std::string cluster_hosts(int cluster) {
    const auto locations = stack_setting("ORDO_PG_SHARD_LOCATIONS");
    const auto key = std::to_string(cluster) + "=";
    for (std::size_t start = 0; start < locations.size();) {
        auto end = locations.find(',', start);
        if (end == std::string::npos) end = locations.size();
        const auto item = locations.substr(start, end - start);
        if (item.rfind(key, 0) == 0) {
            return item.substr(key.size(), item.find('/') - key.size());
        }
        start = end + 1;
    }
    throw std::runtime_error(
        "the test stack runs no PostgreSQL cluster " + std::to_string(cluster) +
        "; start it with ORDO_PG_SHARDS=" + std::to_string(cluster + 1) + " (./ordo.sh test does)");
}

}  // namespace

std::string TestDatabase::on_cluster(const char* setting) const {
    auto url = stack_setting(setting);
    if (hosts_.empty()) return url;
    const auto at = url.find('@');
    return url.substr(0, at + 1) + hosts_ + url.substr(url.find('/', at));
}

TestDatabase::TestDatabase(bool migrate, int cluster)
    : name_{"ordo_test_" + platform::new_uuid().substr(0, 8) + platform::new_uuid().substr(0, 8)},
      hosts_{cluster == 0 ? std::string{} : cluster_hosts(cluster)} {
    {
        pqxx::connection admin{on_cluster("ORDO_PG_ADMIN_URL")};
        pqxx::nontransaction tx{admin};
        tx.exec("CREATE DATABASE " + tx.quote_name(name_) + " OWNER ordo_migrator");
    }
    if (migrate) {
        platform::pg::migrate(migrator_url(), eventstore::migrations(),
                              platform::Logger::null_logger());
    }
}

TestDatabase::~TestDatabase() {
    // ORDO_TEST_KEEP_DATABASES=1 keeps every test database for a look after a failure.
    if (const char* keep = std::getenv("ORDO_TEST_KEEP_DATABASES");
        keep && std::string{keep} == "1")
        return;
    // A server under load (the sanitizer pass runs four test binaries at once) may let a
    // connection attempt run past its connect timeout: the drop is tried again, a few times,
    // before it fails the test.
    constexpr int kAttempts = 4;
    for (int attempt = 1;; ++attempt) {
        try {
            pqxx::connection admin{on_cluster("ORDO_PG_ADMIN_URL")};
            pqxx::nontransaction tx{admin};
            tx.exec("DROP DATABASE IF EXISTS " + tx.quote_name(name_) + " WITH (FORCE)");
            return;
        } catch (const pqxx::broken_connection& e) {
            if (attempt == kAttempts) {
                ADD_FAILURE() << "could not drop test database " << name_ << " in " << kAttempts
                              << " attempts: " << e.what();
                return;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
        } catch (const std::exception& e) {
            ADD_FAILURE() << "could not drop test database " << name_ << ": " << e.what();
            return;
        }
    }
}

std::string TestDatabase::admin_url() const {
    return platform::with_database(on_cluster("ORDO_PG_ADMIN_URL"), name_);
}
std::string TestDatabase::migrator_url() const {
    return platform::with_database(on_cluster("ORDO_MIGRATOR_URL"), name_);
}
std::string TestDatabase::command_url() const {
    return platform::with_database(on_cluster("ORDO_COMMAND_DATABASE_URL"), name_);
}
std::string TestDatabase::relay_url() const {
    return platform::with_database(on_cluster("ORDO_RELAY_DATABASE_URL"), name_);
}
std::string TestDatabase::projector_url() const {
    return platform::with_database(on_cluster("ORDO_PROJECTOR_DATABASE_URL"), name_);
}
std::string TestDatabase::sagas_url() const {
    return platform::with_database(on_cluster("ORDO_SAGAS_DATABASE_URL"), name_);
}
std::string TestDatabase::query_url() const {
    return platform::with_database(on_cluster("ORDO_QUERY_DATABASE_URL"), name_);
}
std::map<std::string, std::string> TestDatabase::service_env() const {
    return {{"ORDO_COMMAND_DATABASE_URL", command_url()},
            {"ORDO_RELAY_DATABASE_URL", relay_url()},
            {"ORDO_PROJECTOR_DATABASE_URL", projector_url()},
            {"ORDO_SAGAS_DATABASE_URL", sagas_url()},
            {"ORDO_QUERY_DATABASE_URL", query_url()}};
}

}  // namespace ordo::testing
