// Fault: the relay killed and NATS restarted while events flow: every event still reaches the
// read models exactly once.

#include <gtest/gtest.h>

#include <signal.h>

#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// The whole read side as processes — relay and projector on their own JetStream stream —
// while events keep arriving and the relay and nats-server are killed under it. Every event
// must reach every read model exactly once.
TEST(ReadSideFaults, RelayKilledAndNatsRestartedWhileEventsFlowStillReachReadModelsOnce) {
    TestDatabase db;
    const auto suffix = platform::new_uuid().substr(0, 8);
    const auto stream = "RF_" + suffix;
    const auto prefix = "rf" + suffix + ".events";
    auto env = db.service_env();
    env.merge(std::map<std::string, std::string>{{"ORDO_NATS_URL", nats_admin_url()},
                                                 {"ORDO_NATS_CA_FILE", nats_ca_file()},
                                                 {"ORDO_PARTITIONS", "4"},
                                                 {"ORDO_NATS_STREAM", stream},
                                                 {"ORDO_NATS_SUBJECT_PREFIX", prefix},
                                                 {"ORDO_LOG_LEVEL", "error"}});
    auto start = [&](const char* service) {
        return std::make_unique<Process>(
            std::vector<std::string>{ordo_binary(), "serve", service, "--address",
                                     "127.0.0.1:" + std::to_string(free_port())},
            env);
    };
    auto relay = start("relay");
    auto projector = start("projector");

    constexpr int kTotal = 3000;
    std::atomic<int> appended{0};
    std::thread appender{[&] {
        platform::pg::Pool pool{
            {.url = db.command_url(), .size = 2, .preparers = {&eventstore::EventStore::prepare}}};
        eventstore::AppendNotifier notifier{db.command_url(), platform::Logger::null_logger()};
        eventstore::EventStore store{pool, &notifier};
        auto trace = platform::new_trace();
        while (appended < kTotal) {
            auto sku = "sku-" + std::to_string(appended % 30);
            std::vector<eventstore::NewEvent> batch;
            for (int i = 0; i < 5; ++i) {
                batch.push_back({platform::new_uuid(),
                                 "StockReceived",
                                 {{"sku", sku}, {"quantity", 1}},
                                 {trace.trace_id_hex(), trace.span_id_hex(), "", "", "", "t"}});
            }
            try {
                store.append("inventory-" + sku, eventstore::ExpectedVersion::any(), batch);
                appended += 5;
            } catch (const std::exception&) {
                std::this_thread::sleep_for(50ms);  // Postgres is not the one being killed here
            }
        }
    }};

    platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
    auto published = [&] {
        try {
            return nats.message_count(stream);
        } catch (const std::exception&) {
            return std::uint64_t{0};
        }
    };
    ASSERT_TRUE(eventually([&] { return published() > 300; }));
    relay->signal(SIGKILL);
    ASSERT_TRUE(relay->wait(10s));
    relay = start("relay");

    ASSERT_TRUE(eventually([&] { return appended >= kTotal / 2; }));
    testing::stack("nats-stop");
    testing::stack("nats-start");

    appender.join();
    ASSERT_TRUE(eventually([&] {
        return scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events") == kTotal &&
               scalar(db.migrator_url(), "SELECT coalesce(sum(on_hand), 0) FROM read.inventory") ==
                   kTotal;
    })) << "trace events "
        << scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events") << ", stock "
        << scalar(db.migrator_url(), "SELECT sum(on_hand) FROM read.inventory");
    EXPECT_EQ(
        scalar(db.migrator_url(),
               "SELECT count(*) FROM read.inventory i WHERE on_hand <> (SELECT count(*) FROM "
               "ordo.events e WHERE e.stream_id = 'inventory-' || i.sku) OR version <> (SELECT "
               "max(stream_version) FROM ordo.events e WHERE e.stream_id = 'inventory-' || i.sku)"),
        0);
    // JetStream holds each event once too, whatever was republished.
    EXPECT_TRUE(eventually([&] { return published() == static_cast<std::uint64_t>(kTotal); }))
        << published();
    relay.reset();
    projector.reset();
    nats.delete_stream(stream);
}

}  // namespace
}  // namespace ordo::testing
