// The projection runtime on PostgreSQL: read models follow the store exactly once, projectors share
// slots and take over, idle partitions advance, batch-committed hooks run.

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include <pqxx/pqxx>

#include "platform/core/metrics.hpp"
#include "projections/read_models.hpp"
#include "projections/runtime.hpp"
#include "tests/support/command_stack.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/projector.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// As the owner: the checks read the read models and the projector's checkpoints, which
// neither the command role nor the query role sees both of.
std::int64_t scalar(CommandStack& stack, const std::string& sql) {
    pqxx::connection conn{stack.database().migrator_url()};
    pqxx::nontransaction tx{conn};
    auto r = tx.exec(sql);
    return r.empty() || r[0][0].is_null() ? std::int64_t{-1} : r[0][0].as<std::int64_t>();
}

void receive(HttpClient& client, const std::string& sku, int quantity) {
    ASSERT_EQ(
        client.post_json("/v1/inventory/" + sku + "/receipts", {{"quantity", quantity}}).status,
        200);
}

TEST(Projections, ReadModelsFollowTheStoreExactlyOnce) {
    CommandStack stack;
    auto client = stack.client();
    for (int i = 0; i < 20; ++i) receive(client, "sku-" + std::to_string(i % 5), i + 1);
    ASSERT_EQ(client.post_json("/v1/accounts/acc-1/deposits", {{"amount", 1000}}).status, 200);
    ASSERT_EQ(client
                  .post_json("/v1/orders",
                             {{"order_id", "o-1"},
                              {"customer_id", "c-1"},
                              {"account_id", "acc-1"},
                              {"lines", {{{"sku", "sku-1"}, {"quantity", 2}, {"unit_price", 50}}}}})
                  .status,
              202);
    stack.service().send("r1", domain::inventory::ReserveStock{"sku-1", "o-1", 2}, {});
    stack.service().send("a1", domain::payments::AuthorizePayment{"acc-1", "o-1", 100}, {});
    stack.service().send("c1", domain::inventory::CommitReservation{"sku-1", "o-1"}, {});
    stack.service().send("p1", domain::payments::CapturePayment{"acc-1", "o-1"}, {});
    stack.service().send("f1", domain::orders::ConfirmOrder{"o-1"}, {});

    Projector projector{stack.database(), "p-a"};
    // Every projection and partition moves on its own: wait until each read model has all.
    ASSERT_TRUE(eventually([&] {
        return scalar(stack, "SELECT count(*) FROM read.trace_events") == stack.event_count() &&
               scalar(stack, "SELECT count(*) FROM read.orders WHERE status = 'confirmed'") == 1 &&
               scalar(stack, "SELECT balance FROM read.accounts WHERE account_id = 'acc-1'") ==
                   900 &&
               scalar(stack, "SELECT sum(on_hand) FROM read.inventory") == 210 - 2;
    }));
    // sku-1 got 2+7+12+17 = 38, then 2 were reserved and committed.
    EXPECT_EQ(scalar(stack, "SELECT on_hand FROM read.inventory WHERE sku = 'sku-1'"), 36);
    EXPECT_EQ(scalar(stack, "SELECT reserved FROM read.inventory WHERE sku = 'sku-1'"), 0);
    EXPECT_EQ(scalar(stack, "SELECT held FROM read.accounts WHERE account_id = 'acc-1'"), 0);
    EXPECT_EQ(scalar(stack, "SELECT sum(on_hand) FROM read.inventory"), 210 - 2);

    // More events later arrive too, once each.
    receive(client, "sku-9", 5);
    // Each projection moves on its own; both get there.
    ASSERT_TRUE(eventually([&] {
        return scalar(stack, "SELECT on_hand FROM read.inventory WHERE sku = 'sku-9'") == 5 &&
               scalar(stack, "SELECT count(*) FROM read.trace_events") == stack.event_count();
    }));
    EXPECT_EQ(scalar(stack, "SELECT sum(on_hand) FROM read.inventory"), 210 - 2 + 5);
}

TEST(Projections, TwoProjectorsShareTheSlotsAndTheSurvivorTakesOver) {
    CommandStack stack;
    auto client = stack.client();
    Projector first{stack.database(), "p-first"};
    const std::size_t total = 4 * 4;  // four projections, four partitions
    ASSERT_TRUE(eventually([&] { return first.owned() == total; }));

    auto second = std::make_unique<Projector>(stack.database(), "p-second");
    ASSERT_TRUE(
        eventually([&] { return first.owned() == total / 2 && second->owned() == total / 2; }));

    for (int i = 0; i < 40; ++i) receive(client, "sku-" + std::to_string(i), 1);
    second->stop();  // its session closes and its advisory locks go with it
    second.reset();
    ASSERT_TRUE(eventually([&] { return first.owned() == total; }));
    for (int i = 40; i < 80; ++i) receive(client, "sku-" + std::to_string(i), 1);
    ASSERT_TRUE(eventually([&] {
        return scalar(stack, "SELECT count(*) FROM read.inventory") == 80 &&
               scalar(stack, "SELECT count(*) FROM read.trace_events") == stack.event_count();
    }));
    EXPECT_EQ(scalar(stack, "SELECT sum(on_hand) FROM read.inventory"), 80);
}

// Found by the soak: a projector stopped cleanly was still counted by the others until its
// heartbeat aged (instance_ttl), so the survivor kept only its half of the slots and the other
// half stalled meanwhile. A clean stop now says goodbye.
TEST(Projections, ACleanlyStoppedProjectorIsNotCountedSoTheSurvivorTakesEverySlotAtOnce) {
    CommandStack stack;
    auto client = stack.client();
    auto options = [&](std::string instance) {
        auto o = Projector::options(stack.database(), std::move(instance), 4);
        o.instance_ttl = 300s;  // far longer than the test waits
        return o;
    };
    Projector first{options("p-stays"), projections::read_models()};
    auto second = std::make_unique<Projector>(options("p-leaves"), projections::read_models());
    const std::size_t total = 4 * 4;  // four projections, four partitions
    ASSERT_TRUE(
        eventually([&] { return first.owned() == total / 2 && second->owned() == total / 2; }));

    second.reset();  // stopped cleanly
    EXPECT_TRUE(eventually([&] { return first.owned() == total; }, 30s))
        << "the survivor still holds " << first.owned() << " of " << total << " slots";
    for (int i = 0; i < 20; ++i) receive(client, "sku-" + std::to_string(i), 1);
    EXPECT_TRUE(eventually(
        [&] { return scalar(stack, "SELECT count(*) FROM read.inventory") == 20; }, 30s));
}

TEST(Projections, AnIdlePartitionStillPassesNewPositions) {
    CommandStack stack;
    auto client = stack.client();
    Projector projector{stack.database(), "p-idle", 16};
    auto reply = client.post_json("/v1/inventory/only-one/receipts", {{"quantity", 1}});
    ASSERT_EQ(reply.status, 200);
    auto token = eventstore::Checkpoint::parse_token(reply.json()["position"].get<std::string>());
    ASSERT_TRUE(token);
    // Every partition of every projection reaches the position, though only one partition
    // of one projection had an event to apply.
    ASSERT_TRUE(eventually([&] {
        return scalar(stack,
                      "SELECT count(*) FROM ordo.projection_checkpoints WHERE (transaction_id, "
                      "global_position) >= ('" +
                          std::to_string(token->transaction_id) + "'::xid8, " +
                          std::to_string(token->position) + ")") == 4 * 16;
    }));
}

// Whoever subscribes to "a batch committed" (the saga intake's notifier) hears of it after
// the commit: by then another connection sees the batch's rows.
TEST(Projections, ABatchCommittedHookRunsAfterTheCommitOfEachBatchThatAppliedEvents) {
    CommandStack stack;
    auto client = stack.client();
    for (int i = 0; i < 6; ++i) receive(client, "sku-" + std::to_string(i), 1);

    platform::metrics::Registry metrics;
    projections::Runtime runtime{Projector::options(stack.database(), "p-hook", 2),
                                 projections::read_models(), platform::Logger::null_logger(),
                                 metrics};
    std::atomic<int> calls{0};
    std::atomic<std::int64_t> seen_at_first_call{-1};
    runtime.on_batch_committed([&] {
        if (calls++ == 0) {
            // Only the inventory levels and the trace index read inventory events.
            seen_at_first_call = scalar(stack,
                                        "SELECT (SELECT count(*) FROM read.trace_events) + "
                                        "(SELECT count(*) FROM read.inventory)");
        }
    });
    std::atomic<bool> stop{false};
    std::thread thread{[&] { runtime.run(stop); }};
    const bool caught_up =
        eventually([&] { return scalar(stack, "SELECT count(*) FROM read.trace_events") == 6; });
    stop = true;
    thread.join();
    ASSERT_TRUE(caught_up);
    EXPECT_GT(calls.load(), 0);
    EXPECT_GT(seen_at_first_call.load(), 0);  // the first batch was visible when it was told
}

}  // namespace
}  // namespace ordo::testing
