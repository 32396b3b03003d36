#pragma once

#include <string>

namespace ordo::testing {

// Settings of the test stack (deploy/stack.sh), from the environment or, when unset, from
// the stack's stack.env. A missing setting fails the test with a message saying how to
// start the stack.
std::string stack_setting(const char* name);

// A fresh, migrated database for one test, dropped when the test ends. Every integration
// test gets its own, so tests run in any order and in parallel.
class TestDatabase {
   public:
    explicit TestDatabase(bool migrate = true);
    ~TestDatabase();
    TestDatabase(const TestDatabase&) = delete;
    TestDatabase& operator=(const TestDatabase&) = delete;

    const std::string& name() const { return name_; }
    std::string admin_url() const;
    std::string migrator_url() const;
    std::string writer_url() const;
    std::string reader_url() const;

   private:
    std::string name_;
};

}  // namespace ordo::testing
