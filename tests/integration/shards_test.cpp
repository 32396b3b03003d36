// A store sharded over two databases, each on a PostgreSQL cluster of its own (their xids and
// horizons apart, as in production): `ordo shards init` writes the map only over shards that
// hold nothing of another's partitions; the Command API runs each command on its stream's
// shard, and a shard that is down fails only the commands on its own streams; one relay per
// shard publishes that shard's events, each exactly once.

#include <gtest/gtest.h>

#include <csignal>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "domain/ids.hpp"
#include "eventstore/shard_catalog.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/config.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "projections/pg_slot_store.hpp"
#include "projections/read_models.hpp"
#include "query/event_feed.hpp"
#include "query/shard_sources.hpp"
#include "sagas/fulfillment.hpp"
#include "tests/integration/sharded_stack.hpp"
#include "tests/soak/checker.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/projector.hpp"
#include "tests/support/sse_client.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

TEST(ShardsInit, RefusesAShardThatHoldsStreamsTheMapGivesToAnother) {
    TestDatabase control;
    TestDatabase second{false, 1};
    {
        // A receipt on a stream of shard 1's partitions, already in shard 0's database.
        pqxx::connection conn{control.command_url()};
        pqxx::work txn{conn};
        txn.exec_params(
            "SELECT ordo.append_events($1, -1, jsonb_build_array(jsonb_build_object("
            "'event_id', gen_random_uuid()::text, 'type', 'StockReceived', 'payload', "
            "'{}'::jsonb, 'metadata', '{}'::jsonb)))",
            "inventory-" + skus_on(1, 1)[0]);
        txn.commit();
    }
    auto [refused, said] = init(control, second);
    EXPECT_EQ(refused, 2);
    EXPECT_NE(said.find("holds streams the map gives to another"), std::string::npos) << said;
    EXPECT_NE(said.find("1 events of partition"), std::string::npos) << said;
    pqxx::connection conn{control.command_url()};
    pqxx::read_transaction txn{conn};
    EXPECT_FALSE(eventstore::read_shard_map(txn)) << "no map was written";
}

TEST(ShardsInit, WritesTheFirstMapOnceAndListShowsEachShard) {
    TestDatabase control;
    TestDatabase second{false, 1};  // on the second cluster; init migrates it
    auto [rc, printed] = init(control, second);
    ASSERT_EQ(rc, 0) << printed;
    {
        pqxx::connection conn{control.query_url()};  // every service role may read it
        pqxx::read_transaction txn{conn};
        auto map = eventstore::read_shard_map(txn);
        ASSERT_TRUE(map);
        EXPECT_EQ(map->version(), 1);
        EXPECT_EQ(map->partitions_of(0), (std::vector<int>{0, 2}));
        EXPECT_EQ(map->partitions_of(1), (std::vector<int>{1, 3}));
        EXPECT_EQ(to_string(map->location(1)), location(second));
        EXPECT_THROW(eventstore::shard_map_for(txn, 8), eventstore::PartitionCountMismatch);
    }
    EXPECT_EQ(scalar(second.admin_url(), "SELECT partitions FROM ordo.topology"), kPartitions);
    auto [again, said] = init(control, second);
    EXPECT_EQ(again, 2) << "a written map changes only by moving";
    EXPECT_NE(said.find("has a shard map already"), std::string::npos) << said;

    auto [listed, out] = ordo({"shards", "--database-url", control.migrator_url(), "--partitions",
                               std::to_string(kPartitions), "list", "--json"});
    ASSERT_EQ(listed, 0) << out;
    auto shown = json::parse(out);
    EXPECT_EQ(shown["version"], 1);
    ASSERT_EQ(shown["shards"].size(), 2u);
    EXPECT_EQ(shown["shards"][1]["location"], location(second));
    EXPECT_EQ(shown["shards"][1]["partitions"], json::array({1, 3}));
    EXPECT_GT(shown["shards"][1]["bytes"].get<std::int64_t>(), 0);
    EXPECT_TRUE(shown["shards"][1]["relay_leader"].is_null());
}

// `shards init --if-absent` (what `ordo dev --shards` runs at each start) with the shards of
// a store whose moves have emptied one of them: the same store, no error, every partition
// fenced on the emptied shard. Given a shard the store never had, it refuses, and touches
// no shard.
TEST(ShardsInit, IfAbsentKnowsAStoreWhoseMovesEmptiedAShard) {
    TestDatabase control;
    TestDatabase second{false, 1};
    auto [rc, printed] = init(control, second);
    ASSERT_EQ(rc, 0) << printed;
    for (int partition : {1, 3}) {  // shard 1's
        auto [moved, said] = ordo({"shards", "--database-url", control.migrator_url(),
                                   "--partitions", std::to_string(kPartitions), "move",
                                   "--partition", std::to_string(partition), "--to", "0"},
                                  true);
        ASSERT_EQ(moved, 0) << said;
    }
    auto if_absent = [&](const std::string& second_location) {
        return ordo({"shards", "--database-url", control.migrator_url(), "--partitions",
                     std::to_string(kPartitions), "init", "--if-absent", "--shard",
                     "0=" + location(control), "--shard", "1=" + second_location},
                    true);
    };
    auto [again, said] = if_absent(location(second));
    EXPECT_EQ(again, 0) << said;
    EXPECT_EQ(scalar(second.admin_url(), "SELECT count(*) FROM ordo.partition_fences"),
              kPartitions);
    TestDatabase other{false, 1};
    auto [refused, why] = if_absent(location(other));
    EXPECT_EQ(refused, 2) << why;
    EXPECT_NE(why.find("names other shards"), std::string::npos) << why;
    // Refused before any shard was touched: the database it named fences nothing.
    EXPECT_EQ(scalar(other.admin_url(), "SELECT count(*) FROM ordo.partition_fences"), 0);
}

TEST_F(ShardedStack, EachCommandRunsOnItsStreamsShardAndAShardDownFailsOnlyItsOwn) {
    const auto first = skus_on(0, 6);
    const auto second = skus_on(1, 6);
    for (const auto* skus : {&first, &second}) {
        for (const auto& sku : *skus) {
            auto res = receive(sku, "receipt-" + sku);
            ASSERT_EQ(res.status, 200) << res.body;
            // The same key again: the first answer, from the command log of the stream's shard.
            auto again = receive(sku, "receipt-" + sku);
            EXPECT_EQ(again.status, 200);
            EXPECT_EQ(again.header("idempotent-replayed"), "true") << again.body;
        }
    }
    for (const auto& sku : first) {
        EXPECT_EQ(events_of(control_, "inventory-" + sku), 1) << sku;
        EXPECT_EQ(events_of(second_, "inventory-" + sku), 0) << sku;
    }
    for (const auto& sku : second) {
        EXPECT_EQ(events_of(control_, "inventory-" + sku), 0) << sku;
        EXPECT_EQ(events_of(second_, "inventory-" + sku), 1) << sku;
    }

    // Shard 1 down: its streams' commands answer 503 with Retry-After and change nothing;
    // shard 0's go on.
    take_down_second(true);
    for (const auto& sku : second) {
        auto res = receive(sku, "down-" + sku);
        EXPECT_EQ(res.status, 503) << res.body;
        EXPECT_FALSE(res.header("retry-after").empty());
    }
    for (const auto& sku : first) EXPECT_EQ(receive(sku, "down-" + sku).status, 200) << sku;

    // Back: the refused commands go through when sent again, once each.
    take_down_second(false);
    for (const auto& sku : second) {
        ASSERT_TRUE(eventually([&] { return receive(sku, "down-" + sku).status == 200; }, 30s))
            << sku;
        EXPECT_EQ(receive(sku, "down-" + sku).header("idempotent-replayed"), "true");
    }
    for (const auto& sku : first) EXPECT_EQ(events_of(control_, "inventory-" + sku), 2) << sku;
    for (const auto& sku : second) EXPECT_EQ(events_of(second_, "inventory-" + sku), 2) << sku;
    EXPECT_EQ(scalar(control_.admin_url(), "SELECT count(*) FROM ordo.events"), 12);
    EXPECT_EQ(scalar(second_.admin_url(), "SELECT count(*) FROM ordo.events"), 12);
}

TEST_F(ShardedStack, ARelayPerShardPublishesEveryEventOfItsShardOnce) {
    const auto& stream = stream_;
    const auto& prefix = prefix_;
    platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
    std::set<std::string> expected;
    for (int shard : {0, 1}) {
        for (const auto& sku : skus_on(shard, 5)) {
            auto res = receive(sku, "r-" + sku);
            ASSERT_EQ(res.status, 200) << res.body;
            expected.insert("inventory-" + sku);
        }
    }
    std::vector<std::unique_ptr<Process>> relays;
    for (const std::string shard : {"0", "1"})
        relays.push_back(serve({"relay", "--shard", shard}, env_));
    // A shard the map does not have is refused at start.
    EXPECT_EQ(serve({"relay", "--shard", "2"}, env_)->wait(60s), 2);

    auto count = [&]() -> std::uint64_t {
        try {
            return nats.message_count(stream);
        } catch (const std::exception&) {
            return 0;  // no relay has made the stream yet
        }
    };
    ASSERT_TRUE(eventually([&] { return count() >= expected.size(); }, 60s)) << count();
    std::map<std::string, int> seen;
    std::mutex mutex;
    auto sub = nats.subscribe_ordered(
        stream, prefix + ".>", std::nullopt, [&](platform::jetstream::Message m) {
            std::lock_guard lock{mutex};
            ++seen[m.headers["ordo-stream"]];
            const auto partition = platform::partition_of(m.headers["ordo-stream"], kPartitions);
            EXPECT_EQ(m.subject.rfind(prefix + "." + std::to_string(partition) + ".", 0), 0u)
                << m.subject;
        });
    EXPECT_TRUE(eventually([&] {
        std::lock_guard lock{mutex};
        return seen.size() >= expected.size();
    }));
    sub.reset();
    EXPECT_EQ(count(), expected.size()) << "each event exactly once";
    for (const auto& s : expected) EXPECT_EQ(seen[s], 1) << s;

    // `ordo shards list` names each shard's relay leader once it has reported.
    EXPECT_TRUE(eventually(
        [&] {
            auto [rc, out] = ordo({"shards", "--database-url", control_.migrator_url(),
                                   "--partitions", std::to_string(kPartitions), "list", "--json"});
            if (rc != 0) return false;
            auto shown = json::parse(out);
            return !shown["shards"][0]["relay_leader"].is_null() &&
                   !shown["shards"][1]["relay_leader"].is_null();
        },
        60s));
    nats.delete_stream(stream);
}

// The projector over both shards, its read models and checkpoints in the control (read)
// database; the query service answering with consistency tokens that name their shard.
TEST_F(ShardedStack, TheReadModelsHoldEveryShardAndATokenWaitsForItsOwnShard) {
    const auto& suffix = suffix_;
    // No relay: the projector reads the shards.
    auto projector = serve({"projector"}, env_);
    const auto query_port = free_port();
    auto query = serve({"query", "--insecure-no-auth"}, env_, query_port);
    HttpClient reads{"127.0.0.1", query_port, 40s};
    ASSERT_TRUE(eventually([&] { return healthy(reads); }));

    for (int shard : {0, 1}) {
        for (const auto& sku : skus_on(shard, 3)) {
            auto res = receive(sku, "r-" + sku);
            ASSERT_EQ(res.status, 200) << res.body;
            const auto position = res.json()["position"].get<std::string>();
            EXPECT_EQ(position.rfind(std::to_string(shard) + ":", 0), 0u) << position;
            auto read = reads.get("/v1/inventory/" + sku + "?wait_ms=30000",
                                  {{"X-Consistency-Token", position}});
            ASSERT_EQ(read.status, 200) << read.body;
            EXPECT_EQ(read.json()["on_hand"], 2) << sku;
        }
    }
    // A list waits for the partitions of its token's shard: an order placed on either shard
    // is in the list read with its token.
    for (int i = 0; i < 4; ++i) {
        const auto id = "order-" + suffix + "-" + std::to_string(i);
        auto placed = client().post_json(
            "/v1/orders",
            {{"order_id", id},
             {"customer_id", "c-1"},
             {"account_id", "a-1"},
             {"lines", json::array({{{"sku", "sku-0"}, {"quantity", 1}, {"unit_price", 100}}})}});
        ASSERT_EQ(placed.status, 202) << placed.body;
        const auto position = placed.json()["position"].get<std::string>();
        EXPECT_EQ(
            position.rfind(
                std::to_string(platform::partition_of(domain::order_stream(id), kPartitions) % 2) +
                    ":",
                0),
            0u)
            << position;
        auto list = reads.get("/v1/orders?customer_id=c-1&wait_ms=30000",
                              {{"X-Consistency-Token", position}});
        ASSERT_EQ(list.status, 200) << list.body;
        EXPECT_NE(list.body.find(id), std::string::npos) << id;
    }
    // The checkpoints of both shards' partitions are in the read database.
    EXPECT_TRUE(eventually([&] {
        return scalar(control_.admin_url(),
                      "SELECT count(DISTINCT partition) FROM ordo.projection_checkpoints "
                      "WHERE projection = 'inventory' AND global_position > 0") == 4;
    }));
}

// Over shards the appends are announced on each shard, not on the read database where the
// projector's session listens. Without JetStream and with a poll of ten minutes, only the
// shards' notifications can bring these events to the read models within the test.
TEST_F(ShardedStack, AProjectorHearsEveryShardsAppendsWithoutJetStreamOrItsPoll) {
    const auto map = map_now();
    ASSERT_GT(map.version(), 0);
    Projector projector{{.database_url = control_.projector_url(),
                         .partitions = kPartitions,
                         .poll_interval = 10min,
                         .instance = "p-shard-appends",
                         .shards = map},
                        projections::read_models()};
    auto& sweeps =
        projector.metrics().counter("ordo_projection_sweeps_total", "", {{"runtime", "projector"}});
    ASSERT_TRUE(eventually([&] { return sweeps.value() >= 1; }));

    auto projected = [&](const std::vector<std::string>& skus) {
        std::string in;
        for (const auto& sku : skus) in += (in.empty() ? "'" : ", '") + sku + "'";
        return scalar(control_.admin_url(), "SELECT count(*) FROM read.inventory WHERE sku IN (" +
                                                in + ") AND on_hand = 2");
    };
    std::vector<std::string> skus;
    for (int shard : {0, 1}) {
        for (const auto& sku : skus_on(shard, 2)) {
            auto res = receive(sku, "n-" + sku);
            ASSERT_EQ(res.status, 200) << res.body;
            skus.push_back(sku);
        }
    }
    EXPECT_TRUE(eventually([&] { return projected(skus) == 4; }));

    // A transaction left open on shard 1's cluster: shard 1's horizon hides what is
    // appended there after it began, and its notification comes while the events cannot be
    // read. The projector's wait asks every shard's horizon, so it looks again soon, not
    // after the ten-minute poll.
    pqxx::connection holder{second_.admin_url()};
    pqxx::work hold{holder};
    hold.exec("SELECT pg_current_xact_id()");
    const auto late_0 = skus_on(0, 3).back(), late_1 = skus_on(1, 3).back();
    for (const auto& sku : {late_1, late_0}) {
        auto res = receive(sku, "n-" + sku);
        ASSERT_EQ(res.status, 200) << res.body;
    }
    EXPECT_TRUE(eventually([&] { return projected({late_0}) == 1; }));
    EXPECT_EQ(projected({late_1}), 0) << "shard 1's receipt was read under a held horizon";
    hold.commit();
    EXPECT_TRUE(eventually([&] { return projected({late_1}) == 1; }));
    // The status counts each partition's lag on its own shard, from the checkpoints of all
    // of them: every partition is shown. (When it was last written depends on the runtime's
    // wakes, and this one polls every ten minutes: what it showed is not asserted.)
    EXPECT_TRUE(eventually([&] {
        return scalar(control_.admin_url(),
                      "SELECT count(*) FROM ordo.projection_status WHERE projection = "
                      "'inventory' AND instance = 'p-shard-appends'") == kPartitions;
    }));
}

// A shard added while the projector runs, and given a partition by a move: the projector had
// no listener there. The flip wakes it through the read database, it reads the partition
// from the new shard, and from then on hears that shard's appends. Without JetStream and
// with a poll of ten minutes, nothing else could bring the event to the read model.
TEST_F(ShardedStack, AProjectorHearsTheAppendsOfAShardAMoveBroughtIn) {
    const auto map = map_now();
    Projector projector{{.database_url = control_.projector_url(),
                         .partitions = kPartitions,
                         .poll_interval = 10min,
                         .instance = "p-new-shard",
                         .shards = map},
                        projections::read_models()};
    // The projector has partition 0's checkpoint row before the move, which the flip rebases.
    ASSERT_TRUE(eventually([&] {
        return scalar(control_.admin_url(),
                      "SELECT count(*) FROM ordo.projection_checkpoints WHERE projection = "
                      "'inventory' AND partition = 0") == 1;
    }));

    TestDatabase third{/*migrate=*/false, 1};
    give_partition_0_to(third);
    if (HasFatalFailure()) return;
    const auto sku = sku_in_partition_0("new-");
    auto res = receive(sku, "n-" + sku);
    ASSERT_EQ(res.status, 200) << res.body;
    EXPECT_EQ(res.json()["position"].get<std::string>().rfind("2:", 0), 0u) << res.body;
    EXPECT_EQ(events_of(third, "inventory-" + sku), 1);
    EXPECT_TRUE(eventually([&] {
        return scalar(control_.admin_url(), "SELECT count(*) FROM read.inventory WHERE sku = '" +
                                                sku + "' AND on_hand = 2") == 1;
    }));
}

// A projection's first checkpoint row, made by a projector that started before a move (a
// projection added to it later, say), names the partition's owner in the map in force: the
// projection reads the partition where it now is, not from the shard it left.
TEST_F(ShardedStack, ANewCheckpointRowNamesThePartitionsOwnerAfterAMove) {
    const auto map = map_now();
    ASSERT_EQ(map.shard_of_partition(0), 0);
    platform::metrics::Registry metrics;
    projections::PgSlotStore store{{.database_url = control_.projector_url(),
                                    .partitions = kPartitions,
                                    .instance = "p-started-before",
                                    .shards = map},
                                   metrics};
    auto [moved, moved_out] =
        ordo({"shards", "--database-url", control_.migrator_url(), "--partitions",
              std::to_string(kPartitions), "move", "--partition", "0", "--to", "1"},
             true);
    ASSERT_EQ(moved, 0) << moved_out;
    store.transact([](projections::SlotTxn& txn) { txn.lock_checkpoint("added-later", 0); });
    EXPECT_EQ(scalar(control_.admin_url(),
                     "SELECT shard FROM ordo.projection_checkpoints WHERE projection = "
                     "'added-later' AND partition = 0"),
              1);
}

// The events API over both shards: pages and the stream give every event of each shard once,
// each shard's in its commit order, with positions that name both shards; a stream resumed
// from an id repeats nothing; and with shard 1 down a page still gives shard 0's new events,
// shard 1's following once it is back.
TEST_F(ShardedStack, TheEventsApiGivesEveryShardsEventsOnceEachInItsOrder) {
    const auto query_port = free_port();
    auto query = serve({"query", "--insecure-no-auth"}, env_, query_port);
    HttpClient reads{"127.0.0.1", query_port, 10s};
    ASSERT_TRUE(eventually([&] { return healthy(reads); }));
    const auto first = skus_on(0, 5);
    const auto second = skus_on(1, 5);
    for (std::size_t i = 0; i < first.size(); ++i) {
        ASSERT_EQ(receive(first[i], "r-" + first[i]).status, 200);
        ASSERT_EQ(receive(second[i], "r-" + second[i]).status, 200);
    }
    // Each event's shard from its stream; its checkpoint on that shard from its position.
    auto shard_of = [](const json& event) {
        return platform::partition_of(event.at("stream").get<std::string>(), kPartitions) % 2;
    };
    auto position = [](const std::string& token) {
        auto p = query::FeedPosition::parse(token, {0, 1});
        EXPECT_TRUE(p) << token;
        return p.value_or(query::FeedPosition{{0, 1}});
    };
    // Pages of 3 from `after` to the end: the events, and where the last page ended.
    auto page_all = [&](std::string after) {
        std::vector<json> events;
        for (int pages = 0; pages < 100; ++pages) {
            auto r = reads.get("/v1/events?limit=3" + (after.empty() ? "" : "&after=" + after));
            EXPECT_EQ(r.status, 200) << r.body;
            if (r.status != 200) break;
            auto body = r.json();
            for (auto& e : body.at("events")) events.push_back(e);
            const auto next = body.at("next_after").get<std::string>();
            if (body.at("events").empty() && next == after) break;
            after = next;
        }
        return std::pair{events, after};
    };
    // The same until `count` events came: an event committed a moment ago can still be hidden
    // by the horizon of transactions running on its cluster (other tests' too).
    auto page_until = [&](std::string after, std::size_t count) {
        std::vector<json> events;
        eventually(
            [&] {
                auto [more, next] = page_all(after);
                events.insert(events.end(), more.begin(), more.end());
                after = next;
                return events.size() >= count;
            },
            30s);
        return std::pair{events, after};
    };
    auto expect_each_shard_in_order = [&](const std::vector<json>& events) {
        std::map<int, eventstore::Checkpoint> last;
        std::set<std::string> ids;
        for (const auto& e : events) {
            const int shard = shard_of(e);
            const auto at = position(e.at("position")).at(static_cast<std::size_t>(shard));
            EXPECT_GT(at, last[shard]) << e.dump();
            last[shard] = at;
            EXPECT_TRUE(ids.insert(e.at("event_id").get<std::string>()).second) << e.dump();
        }
    };
    auto [events, end] = page_until("", 10);
    ASSERT_EQ(events.size(), 10u);
    expect_each_shard_in_order(events);
    EXPECT_EQ(std::count_if(events.begin(), events.end(),
                            [&](const json& e) { return shard_of(e) == 1; }),
              5);
    EXPECT_EQ(end.find("0:"), 0u) << end;

    // The stream from the beginning: the same events, caught up with; then one more on each
    // shard, live.
    SseClient stream{query_port, "/v1/events/stream"};
    ASSERT_EQ(stream.status(), 200);
    std::vector<SseMessage> streamed;
    auto stream_until = [&](std::size_t count) {
        while (streamed.size() < count) {
            auto m = stream.next(20s);
            if (!m) return false;
            if (m->has_data) streamed.push_back(*m);
        }
        return true;
    };
    ASSERT_TRUE(stream_until(10)) << "the stream stopped after " << streamed.size() << " events";
    ASSERT_EQ(receive(first[1], "live-" + first[1]).status, 200);
    ASSERT_EQ(receive(second[1], "live-" + second[1]).status, 200);
    ASSERT_TRUE(stream_until(12)) << "no live events came from both shards";
    std::vector<json> streamed_events;
    for (const auto& m : streamed) streamed_events.push_back(json::parse(m.data));
    expect_each_shard_in_order(streamed_events);
    std::set<std::string> paged_ids, streamed_ids;
    for (const auto& e : events) paged_ids.insert(e.at("event_id"));
    for (std::size_t i = 0; i < 10; ++i) streamed_ids.insert(streamed_events[i].at("event_id"));
    EXPECT_EQ(paged_ids, streamed_ids);
    EXPECT_EQ(streamed_events[10].at("stream").get<std::string>().substr(10),
              shard_of(streamed_events[10]) == 0 ? first[1] : second[1]);
    EXPECT_NE(shard_of(streamed_events[10]), shard_of(streamed_events[11]));
    // Resumed from an id halfway, which names a place in both shards: each shard's events
    // after it, in its order, and nothing else.
    auto per_shard = [&](auto begin, auto end) {
        std::map<int, std::vector<std::string>> out;
        for (auto it = begin; it != end; ++it) out[shard_of(*it)].push_back(it->at("event_id"));
        return out;
    };
    const std::size_t half = 6;
    const auto expected = per_shard(streamed_events.begin() + half + 1, streamed_events.end());
    SseClient resumed{query_port, "/v1/events/stream", {{"Last-Event-ID", streamed[half].id}}};
    ASSERT_EQ(resumed.status(), 200);
    std::vector<json> rest;
    while (rest.size() < streamed.size() - half - 1) {
        auto m = resumed.next(20s);
        ASSERT_TRUE(m) << "the resumed stream stopped after " << rest.size() << " events";
        if (m->has_data) rest.push_back(json::parse(m->data));
    }
    EXPECT_EQ(per_shard(rest.begin(), rest.end()), expected);
    // Nothing more was queued: the next message is an event appended now.
    ASSERT_EQ(receive(first[2], "next-" + first[2]).status, 200);
    std::optional<SseMessage> next;
    do next = resumed.next(20s);
    while (next && !next->has_data);
    ASSERT_TRUE(next);
    EXPECT_EQ(json::parse(next->data).at("stream"), "inventory-" + first[2]);
    // The page position past the three events since.
    auto [since, past] = page_until(end, 3);
    ASSERT_EQ(since.size(), 3u);
    end = past;

    // Shard 1 down: a page gives shard 0's new event and keeps shard 1's place.
    take_down_second(true);
    ASSERT_EQ(receive(first[0], "down-" + first[0]).status, 200);
    auto [during, after_down] = page_until(end, 1);
    ASSERT_EQ(during.size(), 1u);
    EXPECT_EQ(shard_of(during[0]), 0);
    EXPECT_EQ(position(after_down).at(1), position(end).at(1));
    take_down_second(false);
    ASSERT_TRUE(
        eventually([&] { return receive(second[0], "back-" + second[0]).status == 200; }, 30s));
    // The shard's reads rest a few seconds after it failed; then its event comes.
    auto [back, _] = page_until(after_down, 1);
    ASSERT_EQ(back.size(), 1u);
    EXPECT_EQ(shard_of(back[0]), 1);
    EXPECT_EQ(back[0].at("stream"), "inventory-" + second[0]);
    // The stream opened at the start went on through it all: shard 0's events while shard 1
    // was down, shard 1's once it was back.
    ASSERT_TRUE(stream_until(15)) << "the stream stopped after " << streamed.size() << " events";
    std::map<int, std::vector<std::string>> later;  // by shard: there is no order across
    for (std::size_t i = 12; i < 15; ++i) {
        const auto e = json::parse(streamed[i].data);
        later[shard_of(e)].push_back(e.at("stream"));
    }
    EXPECT_EQ(later, (std::map<int, std::vector<std::string>>{
                         {0, {"inventory-" + first[2], "inventory-" + first[0]}},
                         {1, {"inventory-" + second[0]}}}));
}

// A shard added while the query service runs, and a partition moved to it: the events API
// reads it without a restart. A position that names it is taken at once (the service reads
// the map when a position names a shard it does not know), a page gives its events, and a
// stream opened before the shard was added gets them live.
TEST_F(ShardedStack, TheEventsApiReadsAShardAddedWhileItRuns) {
    const auto query_port = free_port();
    auto query = serve({"query", "--insecure-no-auth"}, env_, query_port);
    HttpClient reads{"127.0.0.1", query_port, 10s};
    ASSERT_TRUE(eventually([&] { return healthy(reads); }));
    SseClient stream{query_port, "/v1/events/stream"};
    ASSERT_EQ(stream.status(), 200);

    TestDatabase third{/*migrate=*/false, 1};
    give_partition_0_to(third);
    if (HasFatalFailure()) return;
    // A position that names the new shard, at once: not refused as one the API never gave.
    // The service reads the map for it unless it read it a moment ago (then it answers 503
    // with Retry-After, as when the map cannot be read), so it is asked again on a 503.
    HttpResponse named;
    ASSERT_TRUE(eventually(
        [&] {
            named = reads.get("/v1/events?after=0:1.0,2:1.0");
            return named.status != 503;
        },
        30s));
    EXPECT_EQ(named.status, 200) << named.body;
    const auto sku = sku_in_partition_0("added-");
    auto res = receive(sku, "a-" + sku);
    ASSERT_EQ(res.status, 200) << res.body;
    ASSERT_EQ(res.json()["position"].get<std::string>().rfind("2:", 0), 0u) << res.body;

    // A page from the beginning holds it, with a position that names the new shard.
    json found;
    std::string next_after;
    ASSERT_TRUE(eventually(
        [&] {
            auto r = reads.get("/v1/events?limit=1000");
            if (r.status != 200) return false;
            auto body = r.json();
            next_after = body.at("next_after").get<std::string>();
            for (auto& e : body.at("events")) {
                if (e.at("stream") == "inventory-" + sku) found = e;
            }
            return !found.is_null();
        },
        30s))
        << "no page held the event on the added shard";
    EXPECT_NE(found.at("position").get<std::string>().find(",2:"), std::string::npos) << found;
    EXPECT_NE(next_after.find(",2:"), std::string::npos) << next_after;
    // The stream that was open before the shard came gets it live.
    std::optional<json> streamed;
    while (!streamed) {
        auto m = stream.next(20s);
        ASSERT_TRUE(m) << "the stream opened before the shard was added did not get its event";
        if (!m->has_data) continue;
        auto e = json::parse(m->data);
        if (e.at("stream") == "inventory-" + sku) streamed = e;
    }
    EXPECT_EQ(streamed->at("event_id"), found.at("event_id"));
    EXPECT_NE(streamed->at("position").get<std::string>().find(",2:"), std::string::npos)
        << *streamed;
}

// The query service's shards: those of the map it was given, and those a newer map names once
// it is read (refresh, or confirm for a request's position: a shard added is named once a
// partition is moved to it), each once; the pools and listen URLs point at each shard's
// database. A position's shards are confirmed by the map when it can be read, and are unsure
// when it cannot, or was read a moment ago.
TEST_F(ShardedStack, ShardSourcesGrowWithTheMapAndOnlyThen) {
    platform::pg::Pool home{{.url = control_.query_url(),
                             .size = 2,
                             .name = "sources-home",
                             .preparers = {&eventstore::EventStore::prepare_reader}}};
    query::ShardSources sources{home,
                                map_now(),
                                {.url = control_.query_url(),
                                 .pool = {.size = 2, .name = "sources"},
                                 .refresh_every = 0ms,
                                 .confirm_every = 0ms},
                                platform::Logger::null_logger()};
    using Named = query::ShardSources::Named;
    const auto first_map = map_now();
    auto ids = [&] {
        std::vector<int> out;
        for (const auto& s : sources.current()) out.push_back(s.shard);
        return out;
    };
    ASSERT_EQ(ids(), (std::vector<int>{0, 1}));
    EXPECT_EQ(sources.current()[0].pool, &home);
    EXPECT_NE(sources.current()[1].pool, &home);
    EXPECT_EQ(sources.current()[1].listen_url,
              eventstore::shard_url(control_.query_url(), map_now().location(1)));
    const auto before = sources.generation();
    EXPECT_FALSE(sources.refresh()) << "the same map added a shard";

    TestDatabase third{/*migrate=*/false, 1};
    auto [added, added_out] = shards({"add", "--shard", "2=" + location(third)});
    ASSERT_EQ(added, 0) << added_out;
    // Added, it owns no partition and holds no event: the map does not name it yet.
    EXPECT_FALSE(sources.refresh());
    EXPECT_EQ(sources.confirm({0, 1}), Named::known);
    EXPECT_EQ(sources.confirm({0, 2}), Named::unknown);
    auto [moved, moved_out] = shards({"move", "--partition", "0", "--to", "2"});
    ASSERT_EQ(moved, 0) << moved_out;
    EXPECT_EQ(ids(), (std::vector<int>{0, 1})) << "a shard came before the map was read";
    EXPECT_EQ(sources.generation(), before);
    // A twin that reads the map at most once an hour, and one that cannot read it: the
    // moved-to shard is unsure to the second, and known to the first once it is read.
    query::ShardSources slow{home,
                             first_map,
                             {.url = control_.query_url(),
                              .pool = {.size = 1, .name = "slow"},
                              .refresh_every = 0ms,
                              .confirm_every = 1h},
                             platform::Logger::null_logger()};
    platform::pg::Pool dead{
        {.url = "postgresql://ordo_query:none@127.0.0.1:1/ordo?connect_timeout=2",
         .size = 1,
         .name = "dead"}};
    query::ShardSources blind{dead,
                              first_map,
                              {.url = control_.query_url(),
                               .pool = {.size = 1, .name = "blind"},
                               .refresh_every = 0ms,
                               .confirm_every = 0ms},
                              platform::Logger::null_logger()};
    EXPECT_EQ(blind.confirm({2}), Named::unsure);
    EXPECT_EQ(slow.confirm({2}), Named::known);   // its first read
    EXPECT_EQ(slow.confirm({3}), Named::unsure);  // read a moment ago
    EXPECT_EQ(sources.confirm({0, 2}), Named::known);
    ASSERT_EQ(ids(), (std::vector<int>{0, 1, 2}));
    EXPECT_EQ(sources.confirm({3}), Named::unknown);
    EXPECT_NE(sources.generation(), before);
    EXPECT_EQ(sources.current()[2].listen_url,
              eventstore::shard_url(control_.query_url(), map_now().location(2)));
    // It reads the new shard's events with the reader's statements.
    sources.current()[2].pool->transact<pqxx::nontransaction>(
        [](auto& tx) { EXPECT_FALSE(eventstore::EventStore::head(tx)); });
    EXPECT_FALSE(sources.refresh());
    EXPECT_EQ(ids(), (std::vector<int>{0, 1, 2}));
}

// An id with the given prefix whose stream (`stream_of(id)`) is on `shard`.
template <class StreamOf>
std::string id_on(int shard, const std::string& prefix, StreamOf&& stream_of) {
    for (int i = 0;; ++i) {
        auto id = prefix + std::to_string(i);
        if (platform::partition_of(stream_of(id), kPartitions) % 2 == shard) return id;
    }
}

// Sagas over both shards, in both modes: an order whose stream and account sit on one shard
// and whose stock sits on the other is confirmed, and one the account cannot pay is
// compensated (its stock released): each command runs on its stream's shard and each process
// stream on its own.
class ShardedSagas : public ShardedStack, public ::testing::WithParamInterface<const char*> {};

TEST_P(ShardedSagas, AnOrderSpreadOverBothShardsCompletesOrCompensates) {
    const auto& suffix = suffix_;
    auto env = env_;
    env["ORDO_SAGA_MODE"] = GetParam();
    std::vector<std::unique_ptr<Process>> services;
    for (const std::string shard : {"0", "1"})
        services.push_back(serve({"relay", "--shard", shard}, env));
    for (const char* service : {"projector", "sagas"}) services.push_back(serve({service}, env));
    const auto query_port = free_port();
    services.push_back(serve({"query", "--insecure-no-auth"}, env, query_port));
    HttpClient reads{"127.0.0.1", query_port, 10s};

    const auto sku = id_on(0, "sku-" + suffix + "-",
                           [](const std::string& id) { return domain::inventory_stream(id); });
    const auto rich = id_on(1, "acc-" + suffix + "-",
                            [](const std::string& id) { return domain::account_stream(id); });
    const auto poor = id_on(0, "acc-" + suffix + "-p",
                            [](const std::string& id) { return domain::account_stream(id); });
    ASSERT_EQ(receive(sku, "stock-" + sku).status, 200);
    ASSERT_EQ(client()
                  .post_json("/v1/accounts/" + rich + "/deposits", {{"amount", 1000}},
                             {{"Idempotency-Key", "deposit-" + rich}})
                  .status,
              200);
    // The process stream the intake starts on shard 1, not the control database, so that the
    // intake and the runner must reach across. Which shard an order's other streams land on
    // then follows: a stream's shard here is its partition's parity, which FNV-1a takes from
    // the low bits of the bytes alone, so streams that differ only by prefix keep fixed
    // parities relative to each other (the order stream is on the same shard as the
    // orchestrator's and the inventory process's, the payments and orders processes on the
    // other).
    auto place = [&](const std::string& account, const std::string& prefix) {
        auto shard_of = [](const std::string& stream) {
            return platform::partition_of(stream, kPartitions) % 2;
        };
        std::string id;
        for (int i = 0; id.empty(); ++i) {
            auto candidate = prefix + suffix + "-" + std::to_string(i);
            const auto first = std::string{GetParam()} == "orchestration"
                                   ? sagas::ProcessKind::kFulfillment
                                   : sagas::ProcessKind::kInventory;
            if (shard_of(sagas::stream_of(first, candidate)) == 1) id = candidate;
        }
        auto placed = client().post_json(
            "/v1/orders",
            {{"order_id", id},
             {"customer_id", "c-1"},
             {"account_id", account},
             {"lines", json::array({{{"sku", sku}, {"quantity", 1}, {"unit_price", 300}}})}});
        EXPECT_EQ(placed.status, 202) << placed.body;
        return id;
    };
    auto status_of = [&](const std::string& order_id) {
        try {
            auto r = reads.get("/v1/orders/" + order_id);
            return r.status == 200 ? r.json()["status"].get<std::string>() : std::string{};
        } catch (const std::exception&) {
            reads.close();
            return std::string{};
        }
    };
    const auto paid = place(rich, "o-");
    const auto unpaid = place(poor, "u-");
    EXPECT_TRUE(eventually([&] { return status_of(paid) == "confirmed"; }, 90s)) << status_of(paid);
    EXPECT_TRUE(eventually([&] { return status_of(unpaid) == "cancelled"; }, 90s))
        << status_of(unpaid);
    // Each stream on its own shard: the order and the paying account on shard 1, the stock
    // on shard 0.
    EXPECT_GT(events_of(second_, domain::order_stream(paid)), 0);
    EXPECT_EQ(events_of(control_, domain::order_stream(paid)), 0);
    EXPECT_GT(events_of(control_, domain::inventory_stream(sku)), 0);
    EXPECT_EQ(events_of(second_, domain::inventory_stream(sku)), 0);
    EXPECT_GT(events_of(second_, domain::account_stream(rich)), 0);
    // Every stream of the paid order, its process streams included, is on the shard of its
    // partition and on no other.
    int process_streams = 0;
    for (int shard : {0, 1}) {
        const auto& db = shard == 0 ? control_ : second_;
        pqxx::connection conn{db.admin_url()};
        pqxx::read_transaction txn{conn};
        for (const auto& row : txn.exec_params(
                 "SELECT DISTINCT stream_id FROM ordo.events WHERE stream_id LIKE '%' || $1",
                 paid)) {
            const auto stream = row[0].as<std::string>();
            EXPECT_EQ(platform::partition_of(stream, kPartitions) % 2, shard) << stream;
            if (stream != domain::order_stream(paid)) ++process_streams;
        }
    }
    EXPECT_GT(process_streams, 0);
    // The stock: received 2, one reserved for the paid order, the other's reservation
    // released. The paid account charged once.
    std::string stock;
    EXPECT_TRUE(eventually([&] {
        auto r = reads.get("/v1/inventory/" + sku);
        stock = r.body;
        return r.status == 200 && r.json()["on_hand"] == 1 && r.json()["reserved"] == 0;
    })) << stock;
    // The saga view shows both, read from the process streams on their shards.
    EXPECT_TRUE(eventually([&] {
        auto r = reads.get("/v1/sagas/" + paid);
        return r.status == 200 && r.json()["status"] == "completed";
    }));
    // Every read model rebuilt from both shards equals the live one, once the projector has
    // applied everything (each checkpoint at its shard's head) and is stopped, as for any
    // offline rebuild. The saga service stops first: a process's last event (its end) may
    // still be on its way when the view shows the order completed, and the view shows it
    // read from the process streams.
    auto& saga_service = *services[3];
    saga_service.signal(SIGTERM);
    ASSERT_TRUE(saga_service.wait(30s));
    EXPECT_TRUE(eventually([&] { return read_models_at_heads(); }))
        << "the projector did not catch up with both shards";
    auto& projector = *services[2];
    projector.signal(SIGTERM);
    ASSERT_TRUE(projector.wait(30s));
    for (const auto& difference : soak::differences_from_rebuild(control_, kPartitions)) {
        ADD_FAILURE() << difference;
    }
}

INSTANTIATE_TEST_SUITE_P(BothModes, ShardedSagas,
                         ::testing::Values("orchestration", "choreography"));

}  // namespace
}  // namespace ordo::testing
