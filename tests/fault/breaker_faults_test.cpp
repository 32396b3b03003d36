// Fault: a read model locked past its statement timeout under two projectors opens the shared
// breaker, one instance probes, and every event is applied exactly once after the lock.

#include <gtest/gtest.h>

#include <thread>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/breaker_store.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kSkus = 40;

// Appends `count` receipts of 1 over kSkus skus, from `first` on.
void append_receipts(const TestDatabase& db, int first, int count) {
    platform::pg::Pool pool{
        {.url = db.command_url(), .size = 2, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore store{pool};
    auto trace = platform::new_trace();
    for (int i = first; i < first + count; ++i) {
        store.append("inventory-sku-" + std::to_string(i % kSkus),
                     eventstore::ExpectedVersion::any(),
                     {{platform::new_uuid(),
                       "StockReceived",
                       {{"sku", "sku-" + std::to_string(i % kSkus)}, {"quantity", 1}},
                       {trace.trace_id_hex(), trace.span_id_hex(), "", "", "", "test"}}});
    }
}

struct ProjectorProcess {
    std::uint16_t port;
    std::unique_ptr<Process> process;
};

ProjectorProcess start_projector(const TestDatabase& db, const std::string& bucket) {
    auto port = free_port();
    auto process = std::make_unique<Process>(
        std::vector<std::string>{ordo_binary(), "serve", "projector", "--address",
                                 "127.0.0.1:" + std::to_string(port), "--partitions", "4"},
        std::map<std::string, std::string>{{"ORDO_PROJECTOR_DATABASE_URL", db.projector_url()},
                                           {"ORDO_NATS_URL", nats_admin_url()},
                                           {"ORDO_NATS_CA_FILE", nats_ca_file()},
                                           {"ORDO_BREAKER_BUCKET", bucket},
                                           {"ORDO_BREAKER_COOL_DOWN_MS", "400"},
                                           {"ORDO_BREAKER_CONSECUTIVE_FAILURES", "2"},
                                           {"ORDO_PROJECTOR_STATEMENT_TIMEOUT_MS", "1000"},
                                           {"ORDO_LOG_LEVEL", "error"}});
    return {port, std::move(process)};
}

// A counter or gauge of a projector's /metrics; -1 when absent or unreachable.
double metric(std::uint16_t port, const std::string& series) {
    try {
        HttpClient client{"127.0.0.1", port, 2s};
        auto text = "\n" + client.get("/metrics").body;
        auto at = text.find("\n" + series + " ");
        if (at == std::string::npos) return -1;
        return std::stod(text.substr(at + series.size() + 2));
    } catch (const std::exception&) {
        return -1;
    }
}

double probes(std::uint16_t port) {
    return std::max(0.0, metric(port, "ordo_breaker_probes_total{breaker=\"inventory\"}"));
}

// Exactly once: the stock of each sku is its number of receipts in the store.
void expect_inventory_matches_store(const TestDatabase& db, int total) {
    ASSERT_TRUE(eventually([&] {
        return scalar(db.migrator_url(), "SELECT coalesce(sum(on_hand), 0) FROM read.inventory") ==
               total;
    })) << "stock "
        << scalar(db.migrator_url(), "SELECT sum(on_hand) FROM read.inventory") << ", expected "
        << total;
    EXPECT_EQ(scalar(db.migrator_url(),
                     "SELECT count(*) FROM read.inventory i WHERE on_hand <> (SELECT count(*) FROM "
                     "ordo.events e WHERE e.stream_id = 'inventory-' || i.sku)"),
              0);
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM read.inventory"), kSkus);
}

// The read model's table is locked past the statement timeout while events flow: the
// inventory breaker opens for both projectors (one shared state in NATS KV), the partitions
// wait at their checkpoints, exactly one instance probes each half-open, and once the lock is
// gone the breaker closes and the read model catches up, each event applied once. The other
// projections go on meanwhile.
TEST(BreakerFaults, LockedReadModelOpensTheSharedBreakerOneProberThenCatchesUpExactlyOnce) {
    TestDatabase db;
    const auto bucket = "ordo_breakers_" + db.name();
    append_receipts(db, 0, 400);
    auto a = start_projector(db, bucket);
    auto b = start_projector(db, bucket);
    expect_inventory_matches_store(db, 400);

    pqxx::connection locker{db.admin_url()};
    pqxx::work lock{locker};
    // Held for as long as the test needs, however slow the machine.
    lock.exec("SET LOCAL idle_in_transaction_session_timeout = 0");
    // SHARE blocks the projector's writes without taking a transaction id, which would hold
    // back the horizon below which projections read.
    lock.exec("LOCK TABLE read.inventory IN SHARE MODE");
    std::thread writer{[&] { append_receipts(db, 400, 400); }};
    struct Join {
        std::thread& t;
        ~Join() {
            if (t.joinable()) t.join();
        }
    } join_writer{writer};

    platform::KvBreakerStore store{nats_admin(), bucket, platform::Logger::null_logger()};
    auto shared = [&] { return store.get("projection.inventory"); };
    // Opened, and at least two probes failed since.
    ASSERT_TRUE(eventually([&] {
        auto entry = shared();
        return entry && entry->value.state == platform::BreakerState::open &&
               entry->value.level >= 2;
    })) << (shared() ? shared()->value.to_json() : "no shared state")
        << " " << metric(a.port, "ordo_breaker_state{breaker=\"inventory\"}");
    // Both instances see it (the gauge is 1 open or 2 half-open, never 0 closed).
    ASSERT_TRUE(eventually([&] {
        return metric(a.port, "ordo_breaker_state{breaker=\"inventory\"}") > 0 &&
               metric(b.port, "ordo_breaker_state{breaker=\"inventory\"}") > 0;
    }));
    // Each failed probe raised the level by one: the probes of both instances together equal
    // the level, read between two looks at an unchanged shared state (no probe in flight).
    ASSERT_TRUE(eventually([&] {
        auto before = shared();
        if (!before || before->value.state != platform::BreakerState::open) return false;
        auto total = probes(a.port) + probes(b.port);
        auto after = shared();
        if (!after || after->revision != before->revision) return false;
        return total == static_cast<double>(before->value.level);
    })) << "probes a "
        << probes(a.port) << ", b " << probes(b.port) << ", level " << shared()->value.level;
    // Paused, not skipped: nothing was parked, and other projections went on.
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM ordo.dead_letters"), 0);
    if (writer.joinable()) writer.join();
    ASSERT_TRUE(eventually([&] {
        return scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events") == 800;
    }));
    // The admin view shows it: no owned inventory partition reports a closed breaker.
    ASSERT_TRUE(eventually([&] {
        return scalar(db.migrator_url(),
                      "SELECT count(*) FROM ordo.projection_status WHERE "
                      "projection = 'inventory' AND breaker = 'closed'") == 0 &&
               scalar(db.migrator_url(),
                      "SELECT count(*) FROM ordo.projection_status WHERE "
                      "projection = 'inventory'") == 4;
    }));

    lock.abort();
    ASSERT_TRUE(eventually([&] {
        auto entry = shared();
        return entry && entry->value.state == platform::BreakerState::closed;
    }));
    expect_inventory_matches_store(db, 800);
    ASSERT_TRUE(eventually([&] {
        return metric(a.port, "ordo_breaker_state{breaker=\"inventory\"}") == 0 &&
               metric(b.port, "ordo_breaker_state{breaker=\"inventory\"}") == 0;
    }));
    // The first opening happened on one of them; the other may have adopted half-open first.
    auto opened = [](std::uint16_t port) {
        return std::max(0.0, metric(port,
                                    "ordo_breaker_transitions_total{breaker=\"inventory\","
                                    "from=\"closed\",to=\"open\"}"));
    };
    EXPECT_GE(opened(a.port) + opened(b.port), 1);
}

}  // namespace
}  // namespace ordo::testing
