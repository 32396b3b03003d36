// A test fixture: a projection runtime on its own thread, as `ordo serve projector` runs it,
// with test timings.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "projections/read_models.hpp"
#include "projections/runtime.hpp"
#include "tests/support/test_database.hpp"
#include "tests/support/upcasters.hpp"

namespace ordo::testing {

// A projection runtime on its own thread, as `ordo serve projector` runs it; stopped and
// joined on destruction.
class Projector {
   public:
    Projector(projections::RuntimeOptions options,
              std::vector<std::unique_ptr<projections::Projection>> models)
        : runtime_{std::move(options), std::move(models), logger(), metrics_}, thread_{[this] {
              runtime_.run(stop_);
          }} {}

    // The read models on `db`, with test timings: small batches, quick polls, short TTL.
    Projector(const TestDatabase& db, std::string instance, int partitions = 4)
        : Projector{options(db, std::move(instance), partitions), projections::read_models()} {}

    ~Projector() { stop(); }

    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    std::size_t owned() const { return runtime_.owned_slots(); }
    platform::metrics::Registry& metrics() { return metrics_; }

    static projections::RuntimeOptions options(const TestDatabase& db, std::string instance,
                                               int partitions) {
        using namespace std::chrono_literals;
        return {.database_url = db.projector_url(),
                .partitions = partitions,
                .batch = 50,
                .poll_interval = 200ms,
                .instance_ttl = 3s,
                .instance = std::move(instance),
                .upcasters = &upcasters()};
    }

   private:
    // Silent, unless ORDO_TEST_PROJECTOR_LOG names a level (debug, info...): then to stderr,
    // for a test that fails only under load.
    static platform::Logger logger() {
        const char* level = std::getenv("ORDO_TEST_PROJECTOR_LOG");
        if (level == nullptr || *level == '\0') return platform::Logger::null_logger();
        return platform::Logger::stderr_logger("test-projector", platform::parse_log_level(level));
    }

    platform::metrics::Registry metrics_;
    std::atomic<bool> stop_{false};
    projections::Runtime runtime_;
    std::thread thread_;
};

}  // namespace ordo::testing
