// The soak's checker finds what it is there to find: an acknowledged command whose event is
// missing, one stored twice, an event no client sent, a JetStream stream that lacks events,
// and a webhook delivery missing or unknown; and it does not count a repeated cancel
// (accepted, nothing appended) as lost, nor a webhook's redelivery as a violation. Over two
// shards it reads both: a command stored once on each is stored twice, and a saga's reaction
// caused by an event on the other shard is no unsent command.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/pg/pg.hpp"
#include "tests/soak/checker.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::soak {
namespace {

using namespace std::chrono_literals;
using eventstore::ExpectedVersion;

class SoakChecker : public ::testing::Test {
   protected:
    // Appends one event on `stream` made by the command with Idempotency-Key `key`; its id.
    std::string append(const std::string& stream, const std::string& type, const std::string& key) {
        auto id = platform::new_uuid();
        store_.append(stream, ExpectedVersion::any(),
                      {{id, type, {{"n", 1}}, {"", "", key, key, key, "soak"}}});
        return id;
    }
    static CommandRecord acked(std::string kind, std::string key, std::string path) {
        return {
            .kind = std::move(kind), .key = std::move(key), .path = std::move(path), .status = 202};
    }

    testing::TestDatabase db_;
    platform::pg::Pool pool_{
        {.url = db_.command_url(), .size = 2, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore store_{pool_};
};

// A JetStream stream of the test's own that holds none of the events; deleted at the end.
struct EmptyStream {
    explicit EmptyStream(const std::string& name)
        : stream{"ORDO_SOAK_CHECK_" + name}, subjects{"soakcheck." + name + ".>"} {
        for (int i = 0; i < 200 && !nats.connected(); ++i) std::this_thread::sleep_for(25ms);
        EXPECT_TRUE(nats.connected());
        nats.ensure_stream({.name = stream, .subjects = {subjects}});
    }
    ~EmptyStream() { nats.delete_stream(stream); }
    platform::jetstream::Client nats{testing::nats_admin(), platform::Logger::null_logger()};
    std::string stream, subjects;
};

// The soak's clock for check(): milliseconds since it was made.
std::function<Millis()> clock_from_now() {
    const auto start = std::chrono::steady_clock::now();
    return [start] {
        return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
    };
}

TEST_F(SoakChecker, FindsALostADuplicatedAndAnUnsentCommandAndMissingMessages) {
    append("inventory-sku-a", "StockReceived", "k-ok");
    append("inventory-sku-a", "StockReceived", "k-twice");
    append("inventory-sku-a", "StockReceived", "k-twice");
    append("inventory-sku-b", "StockReceived", "k-unsent");
    append("order-o1", "OrderCancellationRequested", "k-cancel-1");
    const auto placed = append("order-o3", "OrderPlaced", "k-place-3");
    append("order-o4", "OrderPlaced", "k-place-4");
    // The receiver saw o3's twice (a redelivery), o4's never, and an id the store lacks.
    const auto log =
        (std::filesystem::temp_directory_path() / (db_.name() + "-webhook.log")).string();
    std::ofstream{log} << placed << "\n" << placed << "\nnot-an-event\n";

    WorkloadResult work;
    work.commands = {acked("receipt", "k-ok", "/v1/inventory/sku-a/receipts"),
                     acked("receipt", "k-twice", "/v1/inventory/sku-a/receipts"),
                     acked("receipt", "k-lost", "/v1/inventory/sku-c/receipts"),
                     acked("cancel", "k-cancel-1", "/v1/orders/o1/cancel"),
                     // Accepted after the first: the order had a cancellation requested.
                     acked("cancel", "k-cancel-2", "/v1/orders/o1/cancel"),
                     acked("cancel", "k-cancel-3", "/v1/orders/o2/cancel"),
                     acked("place", "k-place-3", "/v1/orders"),
                     acked("place", "k-place-4", "/v1/orders")};

    EmptyStream empty{db_.name()};
    const std::vector<FaultRecord> faults = {
        {.planned = {.at = 0ms, .length = 100ms, .spec = {FaultKind::kNatsKill, ""}},
         .began = 0ms,
         .ended = 100ms}};
    const auto result = check(db_, nullptr, empty.stream, empty.subjects,
                              {.event_types = "OrderPlaced,OrderConfirmed", .log = log}, work,
                              faults, 1s, clock_from_now());
    std::filesystem::remove(log);

    auto reported = [&](const std::string& text) {
        return std::any_of(result.violations.begin(), result.violations.end(),
                           [&](const std::string& v) { return v.find(text) != std::string::npos; });
    };
    std::string all;
    for (const auto& v : result.violations) all += v + "\n";
    EXPECT_EQ(result.lost, 2) << all;
    EXPECT_EQ(result.duplicated, 1) << all;
    EXPECT_TRUE(
        reported("receipt k-lost on /v1/inventory/sku-c/receipts: acknowledged but not "
                 "stored; faults around it: nats-kill#0"))
        << all;
    EXPECT_TRUE(reported("receipt k-twice on /v1/inventory/sku-a/receipts: stored 2 times")) << all;
    EXPECT_TRUE(reported("cancel k-cancel-3 on /v1/orders/o2/cancel: acknowledged, and no cancel"))
        << all;
    EXPECT_TRUE(reported("caused by k-unsent, which no client sent")) << all;
    EXPECT_TRUE(reported("JetStream holds 0 messages")) << all;
    EXPECT_TRUE(reported("did not settle")) << all;
    EXPECT_FALSE(reported("k-ok")) << all;
    EXPECT_FALSE(reported("k-cancel-1")) << all;
    EXPECT_FALSE(reported("k-cancel-2")) << all;
    EXPECT_TRUE(
        reported("the webhook receiver logged 2 distinct ids for 2 events: 1 never "
                 "delivered, 1 unknown"))
        << all;
    EXPECT_EQ(result.webhook_events, 2);
    EXPECT_EQ(result.webhook_deliveries, 3);
    EXPECT_EQ(result.events, 7);
}

TEST_F(SoakChecker, OverTwoShardsReadsBothAndFollowsCausesAcrossThem) {
    testing::TestDatabase second{true, 1};
    platform::pg::Pool second_pool{
        {.url = second.command_url(), .size = 2, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore second_store{second_pool};
    auto reaction = [&](const std::string& stream, const std::string& cause) {
        second_store.append(stream, ExpectedVersion::any(),
                            {{platform::new_uuid(),
                              "StockReserved",
                              {{"n", 1}},
                              {"", "", cause, cause, "", "saga"}}});
    };
    const auto placed = append("order-o1", "OrderPlaced", "k-place");
    // A saga's reaction on the second shard, caused by the order placed on the first.
    reaction("inventory-sku-a", placed);
    // Caused by an event that is on no shard.
    reaction("inventory-sku-b", platform::new_uuid());
    // One command's event on each shard.
    append("inventory-sku-c", "StockReceived", "k-twice");
    second_store.append("inventory-sku-d", ExpectedVersion::any(),
                        {{platform::new_uuid(),
                          "StockReceived",
                          {{"n", 1}},
                          {"", "", "k-twice", "k-twice", "k-twice", "soak"}}});

    WorkloadResult work;
    work.commands = {acked("place", "k-place", "/v1/orders"),
                     acked("receipt", "k-twice", "/v1/inventory/sku-c/receipts"),
                     acked("receipt", "k-lost", "/v1/inventory/sku-e/receipts")};
    EmptyStream empty{db_.name()};
    const auto result =
        check(db_, &second, empty.stream, empty.subjects, {}, work, {}, 1s, clock_from_now());

    std::string all;
    for (const auto& v : result.violations) all += v + "\n";
    auto reported = [&](const std::string& text) { return all.find(text) != std::string::npos; };
    EXPECT_EQ(result.events, 5) << all;
    EXPECT_EQ(result.lost, 1) << all;
    EXPECT_EQ(result.duplicated, 1) << all;
    EXPECT_TRUE(reported("receipt k-twice on /v1/inventory/sku-c/receipts: stored 2 times")) << all;
    EXPECT_TRUE(reported("StockReserved on inventory-sku-b caused by")) << all;
    EXPECT_FALSE(reported("on inventory-sku-a")) << all;
    EXPECT_FALSE(reported("k-place")) << all;
    EXPECT_TRUE(reported("JetStream holds 0 messages with 0 distinct ids for 5 events")) << all;
}

}  // namespace
}  // namespace ordo::soak
