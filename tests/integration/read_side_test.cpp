// The read side live over JetStream: events reach every read model once, and a purged stream is
// caught up from the store.

#include <gtest/gtest.h>

#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/pg/pg.hpp"
#include "projections/read_models.hpp"
#include "projections/runtime.hpp"
#include "relay/relay.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/test_database.hpp"
#include "tests/support/upcasters.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// The read side of one test: its database, its own JetStream stream and subjects, a relay.
class ReadSide {
   public:
    ReadSide()
        : suffix_{platform::new_uuid().substr(0, 8)},
          stream_{"RS_" + suffix_},
          prefix_{"rs" + suffix_ + ".events"},
          nats_{nats_admin(), platform::Logger::null_logger()},
          pool_{{.url = db_.command_url(),
                 .size = 4,
                 .preparers = {&eventstore::EventStore::prepare}}},
          store_{pool_} {
        nats_.ensure_stream({stream_, {prefix_ + ".>"}});
    }
    ~ReadSide() {
        stop_relay();
        nats_.delete_stream(stream_);
    }

    void start_relay() {
        relay_ =
            std::make_unique<relay::Relay>(relay::RelayOptions{.database_url = db_.relay_url(),
                                                               .partitions = 4,
                                                               .stream = stream_,
                                                               .subject_prefix = prefix_,
                                                               .poll_interval = 100ms},
                                           nats_, platform::Logger::null_logger(), relay_metrics_);
        relay_thread_ = std::thread{[this] { relay_->run(relay_stop_); }};
    }
    void stop_relay() {
        relay_stop_ = true;
        if (relay_thread_.joinable()) relay_thread_.join();
    }

    projections::RuntimeOptions projector_options(std::chrono::milliseconds poll) const {
        return {.database_url = db_.projector_url(),
                .partitions = 4,
                .batch = 100,
                .poll_interval = poll,
                .instance = "p-" + suffix_,
                .nats = nats_admin(),
                .stream = stream_,
                .subject_prefix = prefix_,
                .upcasters = &upcasters()};
    }

    // Receipts of 1 over 20 skus, appended through `store`: by default the test's own, which
    // sends no NOTIFY, so that only JetStream or polling can tell a projector about them.
    void append(int count, eventstore::EventStore* store = nullptr) {
        auto trace = platform::new_trace();
        for (int i = 0; i < count; ++i) {
            auto sku = "sku-" + std::to_string(i % 20);
            (store ? *store : store_)
                .append("inventory-" + sku, eventstore::ExpectedVersion::any(),
                        {{platform::new_uuid(),
                          "StockReceived",
                          {{"sku", sku}, {"quantity", 1}},
                          {trace.trace_id_hex(), trace.span_id_hex(), "", "", "", "test"}}});
        }
    }

    bool read_models_hold(int total) const {
        return scalar(db_.migrator_url(), "SELECT count(*) FROM read.trace_events") == total &&
               scalar(db_.migrator_url(), "SELECT coalesce(sum(on_hand), 0) FROM read.inventory") ==
                   total;
    }

    TestDatabase db_;
    std::string suffix_, stream_, prefix_;
    platform::jetstream::Client nats_;
    platform::pg::Pool pool_;
    eventstore::EventStore store_;
    platform::metrics::Registry relay_metrics_;
    std::unique_ptr<relay::Relay> relay_;
    std::atomic<bool> relay_stop_{false};
    std::thread relay_thread_;
};

double counter(const platform::metrics::Registry& registry, const std::string& series) {
    auto text = registry.render();
    auto at = text.find("\n" + series + " ");
    return at == std::string::npos ? 0 : std::stod(text.substr(at + series.size() + 2));
}

TEST(ReadSide, LiveEventsFromJetStreamReachEveryReadModelOnce) {
    ReadSide side;
    side.start_relay();
    platform::metrics::Registry metrics;
    std::atomic<bool> stop{false};
    // Polling once a minute: within the test only JetStream can bring the events.
    auto options = side.projector_options(60s);
    projections::Runtime runtime{options, projections::read_models(),
                                 platform::Logger::null_logger(), metrics};
    std::thread worker{[&] { runtime.run(stop); }};
    ASSERT_TRUE(eventually([&] { return runtime.owned_slots() == 16; }));
    // The first events take every slot through its first step (and its first look at dead
    // letters); the rest find the slots of their partition ready to commit together.
    side.append(20);
    ASSERT_TRUE(eventually([&] { return side.read_models_hold(20); }));
    side.append(280);
    EXPECT_TRUE(eventually([&] { return side.read_models_hold(300); }));
    EXPECT_GT(counter(metrics, "ordo_projection_events_applied_total{source=\"live\"}"), 0);
    // An event is live for every projection's slot of its partition: they commit together.
    EXPECT_GT(counter(metrics, "ordo_projection_shared_commits_total{runtime=\"projector\"}"), 0);
    stop = true;
    worker.join();
}

// OrderPlaced events of schema version 1 (prices as bare amounts) and 2, relayed as stored,
// reach the orders read model live in the current shape.
TEST(ReadSide, LiveEventsOfAnOldSchemaVersionAreReadInTheCurrentShape) {
    ReadSide side;
    side.start_relay();
    platform::metrics::Registry metrics;
    std::atomic<bool> stop{false};
    // Polling and sweeping every ten minutes once the first sweep is done: the events below
    // can only come live, through the upcasters.
    auto options = side.projector_options(10min);
    options.sweep_interval = 10min;
    projections::Runtime runtime{options, projections::read_models(),
                                 platform::Logger::null_logger(), metrics};
    std::thread worker{[&] { runtime.run(stop); }};
    ASSERT_TRUE(eventually([&] { return runtime.owned_slots() == 16; }));
    ASSERT_TRUE(eventually([&] {
        return counter(metrics, "ordo_projection_sweeps_total{runtime=\"projector\"}") == 1;
    }));
    for (int i = 0; i < 200; ++i) {
        const auto order = "o-" + std::to_string(i);
        const bool old = i % 2 == 0;
        const nlohmann::json price =
            old ? nlohmann::json(7) : nlohmann::json{{"amount", 7}, {"currency", "USD"}};
        side.store_.append("order-" + order, eventstore::ExpectedVersion::no_stream(),
                           {{platform::new_uuid(),
                             "OrderPlaced",
                             {{"order_id", order},
                              {"customer_id", "c-1"},
                              {"account_id", "a-1"},
                              {"lines", {{{"sku", "s-1"}, {"quantity", 1}, {"unit_price", price}}}},
                              {"total", 7}},
                             {},
                             old ? 1 : 2}});
    }
    EXPECT_TRUE(eventually([&] {
        return scalar(side.db_.migrator_url(),
                      "SELECT count(*) FROM read.orders WHERE (lines->0->>'unit_price')::int = 7 "
                      "AND lines->0->>'currency' = CASE WHEN substr(order_id, 3)::int % 2 = 0 "
                      "THEN 'EUR' ELSE 'USD' END") == 200;
    }));
    EXPECT_GT(counter(metrics, "ordo_projection_events_applied_total{source=\"live\"}"), 0);
    EXPECT_EQ(counter(metrics, "ordo_projection_events_applied_total{source=\"store\"}"), 0);
    EXPECT_EQ(scalar(side.db_.migrator_url(), "SELECT count(*) FROM ordo.dead_letters"), 0);
    stop = true;
    worker.join();
}

TEST(ReadSide, LiveEventsDoNotWaitForTheStoreSweepThatNotificationsAskFor) {
    ReadSide side;
    side.start_relay();
    platform::metrics::Registry metrics;
    std::atomic<bool> stop{false};
    // Polling and sweeping every ten minutes: after the first sweep, the append
    // notifications below may ask for another but get none within the test, so every event
    // must come live.
    auto options = side.projector_options(10min);
    options.sweep_interval = 10min;
    projections::Runtime runtime{options, projections::read_models(),
                                 platform::Logger::null_logger(), metrics};
    std::thread worker{[&] { runtime.run(stop); }};
    const std::string sweeps = "ordo_projection_sweeps_total{runtime=\"projector\"}";
    ASSERT_TRUE(eventually([&] { return counter(metrics, sweeps) == 1; }));

    eventstore::AppendNotifier notifier{side.db_.command_url(), platform::Logger::null_logger()};
    eventstore::EventStore notifying{side.pool_, &notifier};
    side.append(200, &notifying);
    EXPECT_TRUE(eventually([&] { return side.read_models_hold(200); }));
    EXPECT_EQ(counter(metrics, "ordo_projection_events_applied_total{source=\"store\"}"), 0);
    EXPECT_EQ(counter(metrics, sweeps), 1);
    stop = true;
    worker.join();
}

TEST(ReadSide, PurgedJetStreamIsCaughtUpFromTheStore) {
    ReadSide side;
    side.start_relay();
    side.append(400);
    ASSERT_TRUE(eventually([&] { return side.nats_.message_count(side.stream_) == 400; }));
    side.nats_.purge_stream(side.stream_);

    platform::metrics::Registry metrics;
    std::atomic<bool> stop{false};
    projections::Runtime runtime{side.projector_options(200ms), projections::read_models(),
                                 platform::Logger::null_logger(), metrics};
    std::thread worker{[&] { runtime.run(stop); }};
    EXPECT_TRUE(eventually([&] { return side.read_models_hold(400); }));
    side.append(100);  // and later events, live or not, once each
    EXPECT_TRUE(eventually([&] { return side.read_models_hold(500); }));
    stop = true;
    worker.join();
}

}  // namespace
}  // namespace ordo::testing
