// A fresh, migrated database per test, with a URL per service role, and the test stack's
// settings.
#pragma once

#include <map>
#include <optional>
#include <string>

namespace ordo::testing {

// Settings of the test stack (deploy/stack.sh), from the environment or, when unset, from
// the stack's stack.env. A missing setting fails the test with a message saying how to
// start the stack.
std::string stack_setting(const char* name);
// The same, nullopt when the setting is not there (the cluster's ORDO_HA_* on a single stack).
std::optional<std::string> find_stack_setting(const char* name);

// A fresh, migrated database for one test, dropped when the test ends. Every integration
// test gets its own, so tests run in any order and in parallel.
class TestDatabase {
   public:
    // On the stack's `cluster`: 0, or a shard's (the stack runs ORDO_PG_SHARDS clusters; the
    // test stack two), for tests of a store sharded over clusters.
    explicit TestDatabase(bool migrate = true, int cluster = 0);
    ~TestDatabase();
    TestDatabase(const TestDatabase&) = delete;
    TestDatabase& operator=(const TestDatabase&) = delete;

    const std::string& name() const { return name_; }
    std::string admin_url() const;
    std::string migrator_url() const;
    // One URL per service role (migration 0009), each the role of the service a test stands
    // for: a test that acts as the projector connects as ordo_projector, and so on.
    std::string command_url() const;
    std::string relay_url() const;
    std::string projector_url() const;
    std::string sagas_url() const;
    std::string query_url() const;
    // ORDO_<SERVICE>_DATABASE_URL for all five services, for a test that starts `ordo serve`
    // processes: each picks its own, as under `ordo dev`.
    std::map<std::string, std::string> service_env() const;

   private:
    // The stack's URL `setting` pointed at this database's cluster.
    std::string on_cluster(const char* setting) const;

    std::string name_;
    std::string hosts_;  // the cluster's host:port; empty: the stack's first
};

}  // namespace ordo::testing
