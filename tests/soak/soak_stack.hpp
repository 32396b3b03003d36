// The system under soak: two instances of every Ordo service as real processes over a fresh
// database and a JetStream stream of their own, on the local test stack's PostgreSQL and
// nats-server, and the faults done to them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "tests/soak/schedule.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::soak {

class SoakStack {
   public:
    static constexpr int kPartitions = 4;

    // `mode`: the saga mode, orchestration or choreography.
    explicit SoakStack(const std::string& mode);
    ~SoakStack();
    SoakStack(const SoakStack&) = delete;
    SoakStack& operator=(const SoakStack&) = delete;

    const testing::TestDatabase& database() const { return db_; }
    const std::string& stream() const { return stream_; }
    // The subjects the relays publish on: <prefix>.>.
    std::string subjects() const { return prefix_ + ".>"; }
    // The two instances' ports of a service kind.
    std::vector<std::uint16_t> ports(const std::string& service) const;

    // Starts the fault (kill, SIGSTOP, a server stopped...); end() brings back what it took
    // away. Throws when a service or server does not come back.
    void begin(const PlannedFault& fault);
    void end(const PlannedFault& fault);

    // Every instance alive and answering /healthz (a killed one is started again).
    void ensure_all_up();
    // Stops both instances of `service` (SIGTERM, as an operator would) and keeps them down.
    void stop(const std::string& service);

   private:
    struct Instance {
        std::uint16_t port;
        std::unique_ptr<testing::Process> process;
    };
    void start(const std::string& service, int index);
    void terminate_service_connections();

    // The file whose offset libfaketime, preloaded into every instance, applies to its wall
    // clock ("+0" normally); clock faults write it.
    std::string clock_file(const std::string& service, int index) const;

    testing::TestDatabase db_;
    std::string clock_dir_;
    std::string stream_;
    std::string prefix_;
    std::map<std::string, std::string> env_;
    std::map<std::string, std::vector<Instance>> services_;
    std::mutex mutex_;
};

}  // namespace ordo::soak
