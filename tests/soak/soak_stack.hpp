// The system under soak: two instances of every Ordo service as real processes over a fresh
// database and a JetStream stream of their own, on the local test stack's PostgreSQL and
// nats-server, a webhook receiver the projectors deliver to, and the faults done to them.
// On the highly available cluster (deploy/cluster.sh, whose stack.env says
// ORDO_STACK_TOPOLOGY=ha) the command and query instances listen where its HAProxy forwards
// to, clients go through HAProxy, and the servers' faults are the cluster's.
// Over two shards (the test stack runs two PostgreSQL clusters) the store is sharded over a
// database on each, under the spread map: the first also holds the map and the read models,
// two relays lead each shard, and a PostgreSQL fault of instance N takes shard N's cluster.
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

// The test stack's topology, as its stack.env says (ORDO_STACK_TOPOLOGY=ha: the cluster).
Topology stack_topology();

class SoakStack {
   public:
    static constexpr int kPartitions = 4;

    // The event types the projectors forward to the webhook receiver.
    static constexpr const char* kWebhookEventTypes = "OrderPlaced,OrderConfirmed,OrderCancelled";

    // `mode`: the saga mode, orchestration or choreography. With `nats_disk` the NATS store
    // is moved onto a small filesystem of its own (a tmpfs mounted over the test stack's
    // store directory, which needs root) for the disk-full fault; the destructor moves it
    // back. `shards`: 1, or 2 for a store sharded over the stack's first two clusters.
    SoakStack(const std::string& mode, bool nats_disk, int shards = 1);
    ~SoakStack();
    SoakStack(const SoakStack&) = delete;
    SoakStack& operator=(const SoakStack&) = delete;

    Topology topology() const { return topology_; }
    // The services' database: the store's first shard, the map and the read models.
    const testing::TestDatabase& database() const { return db_; }
    // The second shard's database; null on one store.
    const testing::TestDatabase* second_shard() const { return second_.get(); }
    const std::string& stream() const { return stream_; }
    // The subjects the relays publish on: <prefix>.>.
    std::string subjects() const { return prefix_ + ".>"; }
    // The instances' ports of a service kind: two, and for the relay two per shard.
    std::vector<std::uint16_t> ports(const std::string& service) const;
    // Where clients send a service's requests (command, query): the two instances, or on the
    // cluster the one HAProxy frontend.
    std::vector<std::uint16_t> client_ports(const std::string& service) const;
    // The receiver's log: one line per delivery, the webhook-id (the event's id).
    const std::string& webhook_log() const { return webhook_log_; }

    // Starts the fault (kill, SIGSTOP, a server stopped...); end() brings back what it took
    // away, and returns what it had to do beyond that, as an operator would (empty when
    // nothing). Throws when a service or server does not come back.
    void begin(const PlannedFault& fault);
    std::string end(const PlannedFault& fault);

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
    void start_receiver();
    // Every process ended, the NATS store moved back, the work directory removed.
    void release() noexcept;
    void terminate_service_connections();
    // `action` (pg-stop, pg-start, pg-kill) on the cluster of shard `instance`: over shards
    // a PostgreSQL fault's instance picks the shard; on one store it is the stack's cluster.
    void pg(const std::string& action, int instance);
    // With `mount`, the NATS store onto a filesystem of its own; either way, away from one
    // a killed soak left behind.
    void mount_nats_store(bool mount);
    void unmount_nats_store() noexcept;
    // Fills the NATS store's filesystem to the last byte (a ballast file); empty_disk()
    // removes it.
    void fill_disk();
    void empty_disk();

    // The file whose offset libfaketime, preloaded into every instance, applies to its wall
    // clock ("+0" normally); clock faults write it.
    std::string clock_file(const std::string& service, int index) const;

    Topology topology_ = Topology::kSingle;
    testing::TestDatabase db_;
    std::unique_ptr<testing::TestDatabase> second_;  // the second shard, over two
    std::string work_dir_;  // clock files and the receiver's log
    std::string stream_;
    std::string prefix_;
    std::map<std::string, std::string> env_;
    std::map<std::string, std::vector<Instance>> services_;
    Instance receiver_;
    std::string webhook_log_;
    std::string nats_store_;  // the mounted store directory; empty when not mounted
    std::mutex mutex_;
};

}  // namespace ordo::soak
