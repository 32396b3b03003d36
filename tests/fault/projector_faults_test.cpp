// Fault: projectors killed mid-batch, their connections terminated, one of two killed: every
// event still reaches the read models exactly once.

#include <gtest/gtest.h>

#include <signal.h>

#include <thread>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// Appends `count` receipts of 1, spread over 50 skus, each with a trace id.
void append_receipts(const TestDatabase& db, int count) {
    platform::pg::Pool pool{
        {.url = db.command_url(), .size = 4, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore store{pool};
    auto trace = platform::new_trace();
    for (int i = 0; i < count; i += 10) {
        std::vector<eventstore::NewEvent> batch;
        auto sku = "sku-" + std::to_string((i / 10) % 50);
        for (int j = 0; j < 10; ++j) {
            batch.push_back({platform::new_uuid(),
                             "StockReceived",
                             {{"sku", sku}, {"quantity", 1}},
                             {trace.trace_id_hex(), trace.span_id_hex(), "", "", "", "test"}});
        }
        store.append("inventory-" + sku, eventstore::ExpectedVersion::any(), batch);
    }
}

std::unique_ptr<Process> start_projector(const TestDatabase& db, std::uint16_t port = free_port()) {
    return std::make_unique<Process>(
        std::vector<std::string>{ordo_binary(), "serve", "projector", "--address",
                                 "127.0.0.1:" + std::to_string(port), "--partitions", "8"},
        std::map<std::string, std::string>{{"ORDO_PROJECTOR_DATABASE_URL", db.projector_url()},
                                           {"ORDO_NATS_URL", nats_admin_url()},
                                           {"ORDO_NATS_CA_FILE", nats_ca_file()},
                                           {"ORDO_LOG_LEVEL", "warn"}});
}

// Exactly once: every event counted once in the trace index and once in the stock.
void expect_exactly_once(const TestDatabase& db, int total) {
    ASSERT_TRUE(eventually([&] {
        return scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events") == total &&
               scalar(db.migrator_url(), "SELECT coalesce(sum(on_hand), 0) FROM read.inventory") ==
                   total;
    })) << "trace events "
        << scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events") << ", stock "
        << scalar(db.migrator_url(), "SELECT sum(on_hand) FROM read.inventory") << ", expected "
        << total;
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM read.inventory"), 50);
    EXPECT_EQ(scalar(db.migrator_url(),
                     "SELECT count(*) FROM read.inventory i WHERE on_hand <> (SELECT count(*) FROM "
                     "ordo.events e WHERE e.stream_id = 'inventory-' || i.sku)"),
              0);
    // Applied in stream order: each row carries the version of its stream's last event.
    EXPECT_EQ(scalar(db.migrator_url(),
                     "SELECT count(*) FROM read.inventory i WHERE version <> (SELECT "
                     "max(stream_version) FROM ordo.events e WHERE e.stream_id = 'inventory-' || "
                     "i.sku)"),
              0);
}

TEST(ProjectorFaults, SigkillMidBatchThenRestartAppliesEveryEventOnce) {
    TestDatabase db;
    constexpr int kTotal = 6000;
    append_receipts(db, kTotal);
    auto projector = start_projector(db);
    ASSERT_TRUE(eventually(
        [&] { return scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events") > 0; }));
    projector->signal(SIGKILL);
    ASSERT_TRUE(projector->wait(10s));
    EXPECT_LT(scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events"), kTotal)
        << "killed after it had finished: the test proves nothing";
    projector = start_projector(db);
    expect_exactly_once(db, kTotal);
}

TEST(ProjectorFaults, TerminatedConnectionsAreRetriedWithoutLossOrDoubles) {
    TestDatabase db;
    constexpr int kTotal = 4000;
    append_receipts(db, kTotal);
    auto projector = start_projector(db);
    for (int round = 0; round < 5; ++round) {
        ASSERT_TRUE(eventually([&] {
            return scalar(db.migrator_url(), "SELECT count(*) FROM read.trace_events") >
                   round * 200;
        }));
        scalar(db.admin_url(),
               "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE datname = '" +
                   db.name() + "' AND usename = 'ordo_projector' AND pid <> pg_backend_pid()");
    }
    expect_exactly_once(db, kTotal);
}

TEST(ProjectorFaults, TwoProjectorsThenOneKilledLeavesTheOtherToFinishExactlyOnce) {
    TestDatabase db;
    constexpr int kTotal = 6000;
    auto first_port = free_port();
    auto second_port = free_port();
    auto first = start_projector(db, first_port);
    auto second = start_projector(db, second_port);
    // Both take part: each owns half of the 5 x 8 slots (orders, inventory, accounts,
    // traces, sagas) before the kill.
    auto owned = [](std::uint16_t port) {
        try {
            HttpClient client{"127.0.0.1", port, 2s};
            auto text = client.get("/metrics").body;
            const std::string needle = "\nordo_projection_owned_slots ";
            auto at = text.find(needle);
            return at == std::string::npos ? -1 : std::stoi(text.substr(at + needle.size()));
        } catch (const std::exception&) {
            return -1;
        }
    };
    ASSERT_TRUE(eventually([&] { return owned(first_port) == 20 && owned(second_port) == 20; }));
    append_receipts(db, 1000);
    append_receipts(db, kTotal - 1000);
    second->signal(SIGKILL);
    ASSERT_TRUE(second->wait(10s));
    expect_exactly_once(db, kTotal);
}

}  // namespace
}  // namespace ordo::testing
