// The relay: every event published once with its subject, headers and partition chain; restarts,
// a second relay taking over, and a lost database session.

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/wire.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/pg/pg.hpp"
#include "relay/relay.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::eventstore {
namespace {

using namespace std::chrono_literals;
using platform::jetstream::Client;
using platform::jetstream::Message;
using relay::Relay;
using relay::RelayOptions;
using testing::eventually;

constexpr int kPartitions = 4;

std::string header(const Message& m, const std::string& name) {
    auto it = m.headers.find(name);
    return it == m.headers.end() ? std::string{} : it->second;
}

// A relay running on a thread of its own until destroyed.
class RunningRelay {
   public:
    RunningRelay(RelayOptions options, const platform::nats::ClientSettings& nats)
        : client_{nats, platform::Logger::null_logger()},
          relay_{std::move(options), client_, platform::Logger::null_logger(), metrics_},
          thread_{[this] { relay_.run(stop_); }} {}
    ~RunningRelay() { stop(); }
    void stop() {
        stop_ = true;
        if (thread_.joinable()) thread_.join();
    }
    bool is_leader() const { return relay_.is_leader(); }
    double published() {
        return metrics_.counter("ordo_relay_published_total", "", {{"shard", "0"}}).value();
    }
    double horizon_hidden() {
        return metrics_.gauge("ordo_horizon_hidden_seconds", "", {{"shard", "0"}}).value();
    }

   private:
    platform::metrics::Registry metrics_;
    Client client_;
    Relay relay_;
    std::atomic<bool> stop_{false};
    std::thread thread_;
};

class RelayTest : public ::testing::Test {
   protected:
    RelayTest() {
        auto suffix = platform::new_uuid().substr(0, 8);
        stream_ = "T_" + suffix;
        prefix_ = "t" + suffix + ".events";
    }
    ~RelayTest() override {
        try {
            client_.delete_stream(stream_);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "could not delete stream " << stream_ << ": " << e.what();
        }
    }

    RelayOptions options() {
        RelayOptions o;
        o.database_url = db_.relay_url();
        o.partitions = kPartitions;
        o.stream = stream_;
        o.subject_prefix = prefix_;
        o.poll_interval = 100ms;
        o.batch = 50;  // several batches per test
        o.window = 16;
        return o;
    }
    std::unique_ptr<RunningRelay> start_relay(const std::string& instance = "relay") {
        auto o = options();
        o.instance = instance;
        return std::make_unique<RunningRelay>(o, nats_);
    }
    // Who read.relays says leads shard 0, and since when ("" when nobody has said).
    std::pair<std::string, std::string> reported_leader() {
        pqxx::connection conn{db_.admin_url()};
        pqxx::nontransaction tx{conn};
        auto rows = tx.exec(
            "SELECT coalesce(leader, ''), coalesce(leader_since::text, '') FROM read.relays "
            "WHERE shard = 0");
        if (rows.empty()) return {"", ""};
        return {rows[0][0].as<std::string>(), rows[0][1].as<std::string>()};
    }

    // Appends `count` events spread over several streams (so several partitions), some with
    // trace context; returns them in append order.
    std::vector<std::pair<std::string, NewEvent>> append(int count, int first = 0) {
        std::vector<std::pair<std::string, NewEvent>> out;
        for (int i = first; i < first + count; ++i) {
            static const char* kStreams[] = {
                "order-1",         "order-2",   "order-3",   "inventory-sku-1",
                "inventory-sku-2", "account-a", "account-b", "saga.fulfillment-o1"};
            std::string stream = kStreams[i % 8];
            NewEvent e{platform::new_uuid(), "Happened", {{"i", i}}, {}};
            if (i % 3 == 0) {
                auto trace = platform::new_trace();
                e.metadata.trace_id = trace.trace_id_hex();
                e.metadata.span_id = trace.span_id_hex();
            }
            store_.append(stream, ExpectedVersion::any(), {e});
            out.emplace_back(stream, e);
        }
        return out;
    }

    std::uint64_t published_count() {
        try {
            return client_.message_count(stream_);
        } catch (const std::exception&) {
            return 0;  // the relay has not created the stream yet
        }
    }

    Checkpoint relay_checkpoint() {
        pqxx::connection conn{db_.relay_url()};
        pqxx::nontransaction tx{conn};
        auto rows = tx.exec(
            "SELECT transaction_id::text, global_position FROM ordo.relay_checkpoint "
            "WHERE shard = 0");
        if (rows.empty()) return {};
        return {eventstore::transaction_id_from_xid8(rows[0][0].c_str()),
                rows[0][1].as<std::int64_t>()};
    }
    Checkpoint last_event() {
        pqxx::connection conn{db_.relay_url()};
        pqxx::nontransaction tx{conn};
        auto row = tx.exec1(
            "SELECT transaction_id::text AS txid, global_position FROM ordo.events "
            "ORDER BY transaction_id DESC, global_position DESC LIMIT 1");
        return {eventstore::transaction_id_from_xid8(row[0].c_str()), row[1].as<std::int64_t>()};
    }
    // The relay has published everything and recorded it.
    bool caught_up() { return relay_checkpoint() == last_event(); }

    // Every message of the stream, in stream order, read with an ordered consumer.
    std::vector<Message> messages(std::size_t expected) {
        std::mutex mutex;
        std::vector<Message> out;
        auto sub = client_.subscribe_ordered(stream_, prefix_ + ".>", std::nullopt, [&](Message m) {
            std::lock_guard lock{mutex};
            out.push_back(std::move(m));
        });
        EXPECT_TRUE(eventually([&] {
            std::lock_guard lock{mutex};
            return out.size() >= expected;
        }));
        sub.reset();
        return out;
    }

    // Each event exactly once, with its subject and headers; per partition, order keys rise
    // and each message names its predecessor.
    void check_stream(const std::vector<std::pair<std::string, NewEvent>>& appended) {
        ASSERT_EQ(published_count(), appended.size()) << "each event exactly once";
        auto got = messages(appended.size());
        ASSERT_EQ(got.size(), appended.size());

        std::map<std::string, std::pair<std::string, NewEvent>> by_id;
        for (const auto& [stream, e] : appended) by_id.emplace(e.event_id, std::pair{stream, e});
        std::set<std::string> seen;
        std::map<int, std::string> last_key;  // partition -> order key
        std::map<std::string, std::int64_t> versions;
        for (const auto& m : got) {
            auto id = header(m, "nats-msg-id");
            ASSERT_TRUE(seen.insert(id).second) << "duplicate " << id;
            auto it = by_id.find(id);
            ASSERT_NE(it, by_id.end()) << "unknown event " << id;
            const auto& [stream, event] = it->second;
            int partition = platform::partition_of(stream, kPartitions);
            EXPECT_EQ(m.subject,
                      prefix_ + "." + std::to_string(partition) + "." + category_of(stream));
            EXPECT_EQ(header(m, "ordo-stream"), stream);
            EXPECT_EQ(header(m, "ordo-type"), "Happened");
            EXPECT_EQ(header(m, "ordo-partition"), std::to_string(partition));
            EXPECT_EQ(header(m, "ordo-version"), std::to_string(++versions[stream]))
                << "a stream's events in version order";
            EXPECT_FALSE(header(m, "ordo-recorded-at").empty());
            if (event.metadata.trace_id.empty()) {
                EXPECT_EQ(header(m, "traceparent"), "");
            } else {
                EXPECT_EQ(header(m, "traceparent"),
                          "00-" + event.metadata.trace_id + "-" + event.metadata.span_id + "-01");
            }
            auto key = Checkpoint::parse_token(header(m, "ordo-order-key"));
            ASSERT_TRUE(key) << header(m, "ordo-order-key");
            EXPECT_EQ(header(m, "ordo-previous"), last_key[partition]);
            // What consumers read: the message, as delivered, decodes to this event.
            auto decoded = decode_wire(prefix_, m.subject, m.headers, m.data);
            if (auto* refusal = std::get_if<WireRefusal>(&decoded)) {
                ADD_FAILURE() << "refused: " << refusal->reason;
            } else {
                const auto& read = std::get<PublishedEvent>(decoded);
                EXPECT_EQ(read.key, *key);
                EXPECT_EQ(read.previous,
                          Checkpoint::parse_token(last_key[partition]).value_or(Checkpoint{}));
                EXPECT_EQ(read.event.event_id, id);
                EXPECT_EQ(read.event.stream_id, stream);
                EXPECT_EQ(read.event.payload, event.payload);
                EXPECT_EQ(read.event.metadata.trace_id, event.metadata.trace_id);
            }
            if (auto previous = Checkpoint::parse_token(last_key[partition])) {
                EXPECT_LT(*previous, *key) << "order keys rise within a partition";
            }
            last_key[partition] = key->token();

            auto body = nlohmann::json::parse(m.data);
            EXPECT_EQ(body["event_id"], id);
            EXPECT_EQ(body["stream"], stream);
            EXPECT_EQ(body["category"], category_of(stream));
            EXPECT_EQ(body["payload"], event.payload);
            EXPECT_EQ(body["metadata"]["trace_id"], event.metadata.trace_id);
            EXPECT_EQ(body["schema_version"], 1);
            EXPECT_EQ((Checkpoint{body["transaction_id"].get<std::uint64_t>(),
                                  body["position"].get<std::int64_t>()}),
                      *key);
        }
        EXPECT_EQ(seen.size(), appended.size());
        EXPECT_GT(last_key.size(), 1u) << "the events should span several partitions";
    }

    testing::TestDatabase db_;
    platform::pg::Pool pool_{platform::pg::PoolOptions{
        .url = db_.command_url(), .size = 4, .preparers = {&EventStore::prepare}}};
    AppendNotifier notifier_{db_.command_url(), platform::Logger::null_logger()};
    EventStore store_{pool_, &notifier_};
    platform::nats::ClientSettings nats_ = testing::nats_admin();
    Client client_{nats_, platform::Logger::null_logger()};
    std::string stream_;
    std::string prefix_;
};

TEST_F(RelayTest, PublishesEveryEventOnceWithSubjectsHeadersAndPerPartitionChains) {
    auto relay = start_relay();
    auto appended = append(120);
    ASSERT_TRUE(eventually([&] { return caught_up(); })) << "the relay did not catch up";
    EXPECT_TRUE(relay->is_leader());
    EXPECT_EQ(relay->published(), 120);
    check_stream(appended);
}

TEST_F(RelayTest, ExportsHowLongAnOpenTransactionHidesCommittedEvents) {
    auto relay = start_relay();
    append(1);
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    // A writer that has appended but not committed holds the horizon; what commits after it
    // began stays hidden from the relay, and the gauge shows for how long.
    pqxx::connection slow_conn{db_.command_url()};
    EventStore::prepare(slow_conn);
    pqxx::work slow{slow_conn};
    EventStore::append(slow, "order-slow", ExpectedVersion::any(),
                       {{platform::new_uuid(), "Slow", {}, {}}});
    append(1, 1);
    EXPECT_TRUE(eventually([&] { return relay->horizon_hidden() >= 0.5; }));
    slow.commit();
    EXPECT_TRUE(eventually([&] { return relay->horizon_hidden() == 0 && caught_up(); }));
    EXPECT_EQ(relay->published(), 3);
}

TEST_F(RelayTest, PublishesTheBacklogThenOnlyNewEventsAfterARestart) {
    auto appended = append(80);
    {
        auto relay = start_relay();
        ASSERT_TRUE(eventually([&] { return caught_up(); }));
        EXPECT_EQ(relay->published(), 80);
    }
    EXPECT_EQ(published_count(), 80u);
    auto more = append(40, 80);
    appended.insert(appended.end(), more.begin(), more.end());
    auto relay = start_relay();
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    EXPECT_EQ(relay->published(), 40) << "a restarted relay resumes at its checkpoint";
    check_stream(appended);  // the chains continue across the restart
}

TEST_F(RelayTest, OneOfTwoRelaysLeadsAndTheOtherTakesOverWithoutLossOrDuplicates) {
    auto first = start_relay("relay-a");
    ASSERT_TRUE(eventually([&] { return first->is_leader(); }));
    // The leader shows itself (the console's relay view).
    ASSERT_TRUE(eventually([&] { return reported_leader().first == "relay-a"; }));
    const auto first_since = reported_leader().second;
    auto second = start_relay("relay-b");

    std::atomic<bool> stop_appending{false};
    std::mutex mutex;
    std::vector<std::pair<std::string, NewEvent>> appended;
    std::jthread appender{[&] {
        for (int i = 0; !stop_appending; ++i) {
            auto batch = append(1, i);
            std::lock_guard lock{mutex};
            appended.insert(appended.end(), batch.begin(), batch.end());
        }
    }};
    struct StopOnExit {  // a failed assertion returns early; the jthread then joins
        std::atomic<bool>& flag;
        ~StopOnExit() { flag = true; }
    } stop_on_exit{stop_appending};
    auto appended_count = [&] {
        std::lock_guard lock{mutex};
        return appended.size();
    };

    // Both run for a while: never two leaders.
    bool both = false;
    ASSERT_TRUE(eventually([&] {
        both = both || (first->is_leader() && second->is_leader());
        return published_count() >= 40;
    }));
    EXPECT_FALSE(both) << "two relays led at once";
    EXPECT_TRUE(first->is_leader());
    EXPECT_FALSE(second->is_leader());

    EXPECT_EQ(reported_leader().first, "relay-a") << "the standby said it led";
    first->stop();
    ASSERT_TRUE(eventually([&] { return second->is_leader(); })) << "the standby took over";
    ASSERT_TRUE(eventually([&] { return reported_leader().first == "relay-b"; }));
    EXPECT_GT(reported_leader().second, first_since) << "a new term, a new start";
    auto at_takeover = appended_count();
    ASSERT_TRUE(eventually([&] { return appended_count() >= at_takeover + 30; }));
    stop_appending = true;
    appender.join();

    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    EXPECT_GT(second->published(), 0);
    check_stream(appended);
}

TEST_F(RelayTest, LosingItsDatabaseSessionCostsLeadershipUntilItReconnects) {
    auto relay = start_relay();
    auto appended = append(40);
    ASSERT_TRUE(eventually([&] { return caught_up(); }));

    pqxx::connection admin{db_.admin_url()};
    auto relay_sessions = [&] {
        pqxx::nontransaction tx{admin};
        std::set<int> pids;
        for (const auto& row : tx.exec_params("SELECT pid FROM pg_stat_activity WHERE datname = $1 "
                                              "AND application_name = 'ordo-relay'",
                                              db_.name())) {
            pids.insert(row[0].as<int>());
        }
        return pids;
    };
    auto before = relay_sessions();
    ASSERT_EQ(before.size(), 1u);
    {
        pqxx::nontransaction tx{admin};
        tx.exec_params("SELECT pg_terminate_backend($1)", *before.begin());
    }
    ASSERT_TRUE(eventually([&] {
        auto now = relay_sessions();
        return relay->is_leader() && now.size() == 1 && now != before;
    })) << "the relay leads again from a new session";

    auto more = append(40, 40);
    appended.insert(appended.end(), more.begin(), more.end());
    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    check_stream(appended);
}

}  // namespace
}  // namespace ordo::eventstore
