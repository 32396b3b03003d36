// Moving a partition between shards under a running stack (command service, a relay per
// shard, projector, query service), with `ordo shards move` killed by SIGKILL after each of
// its steps and run again: nothing acknowledged is lost or doubled, the partition's writes
// pause only while it moves, services that hold the old map follow the new one, the read
// models go on from where they were, and a move not yet flipped rolls back.

#include <gtest/gtest.h>

#include <optional>
#include <set>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/partition.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/pg/pg.hpp"
#include "tests/integration/sharded_stack.hpp"
#include "tests/soak/checker.hpp"

namespace ordo::testing {
namespace {

using nlohmann::json;

// Partition 0 is shard 0's under the spread map of two shards; it moves to shard 1.
constexpr int kMoved = 0;

// `count` skus whose inventory streams are in `partition`.
std::vector<std::string> skus_in(int partition, int count, const std::string& prefix) {
    std::vector<std::string> skus;
    for (int i = 0; static_cast<int>(skus.size()) < count; ++i) {
        auto sku = prefix + std::to_string(i);
        if (platform::partition_of("inventory-" + sku, kPartitions) == partition) {
            skus.push_back(sku);
        }
    }
    return skus;
}

std::int64_t events_in(const TestDatabase& db, int partition) {
    return scalar(db.admin_url(), "SELECT count(*) FROM ordo.events WHERE stream_hash % " +
                                      std::to_string(kPartitions) + " = " +
                                      std::to_string(partition));
}

bool fenced(const TestDatabase& db, int partition) {
    return scalar(db.admin_url(), "SELECT count(*) FROM ordo.partition_fences WHERE partition = " +
                                      std::to_string(partition)) == 1;
}

class ShardMove : public ShardedStack {
   protected:
    ShardMove() {
        for (const std::string shard : {"0", "1"})
            services_.push_back(serve({"relay", "--shard", shard}, env_));
        services_.push_back(serve({"projector"}, env_));
        services_.push_back(serve({"query", "--insecure-no-auth"}, env_, query_port_));
        EXPECT_TRUE(eventually([&] { return healthy(reads_); }));
    }

    ~ShardMove() override {
        services_.clear();  // the relays first: they would make the stream again
        try {
            platform::jetstream::Client{nats_admin(), platform::Logger::null_logger()}
                .delete_stream(stream_);
        } catch (const std::exception&) {
            // a test that failed before any relay ran has no stream
        }
    }

    // `ordo shards move` of the moved partition (to shard 1 unless `extra` says otherwise),
    // killed after `point` when one is named.
    std::pair<int, std::string> move(const std::string& point = "",
                                     std::vector<std::string> extra = {"--to", "1"}) {
        std::vector<std::string> arguments{"shards",
                                           "--database-url",
                                           control_.migrator_url(),
                                           "--partitions",
                                           std::to_string(kPartitions),
                                           "move",
                                           "--partition",
                                           std::to_string(kMoved),
                                           "--batch",
                                           "2"};
        arguments.insert(arguments.end(), extra.begin(), extra.end());
        std::map<std::string, std::string> env;
        if (!point.empty()) env["ORDO_SHARDS_MOVE_KILL_AFTER"] = point;
        return ordo(arguments, true, env);
    }

    // The inventory read model of `sku`, read with `token` (waiting for it).
    json stock(const std::string& sku, const std::string& token) {
        auto read =
            reads_.get("/v1/inventory/" + sku + "?wait_ms=30000", {{"X-Consistency-Token", token}});
        EXPECT_EQ(read.status, 200) << read.body;
        return read.status == 200 ? read.json() : json{};
    }

    std::int64_t map_owner(int partition) {
        return scalar(control_.admin_url(),
                      "SELECT owners[" + std::to_string(partition + 1) +
                          "] FROM ordo.shard_map ORDER BY version DESC LIMIT 1");
    }

    std::uint16_t query_port_ = free_port();
    HttpClient reads_{"127.0.0.1", query_port_, 40s};
    std::vector<std::unique_ptr<Process>> services_;
};

class ShardMoveKilled : public ShardMove, public ::testing::WithParamInterface<const char*> {};

TEST_P(ShardMoveKilled, RunAgainItFinishesAndNothingIsLostOrDoubled) {
    const std::string point = GetParam();
    const auto moving = skus_in(kMoved, 3, "m-" + suffix_ + "-");
    const auto staying = skus_in(2, 2, "s-" + suffix_ + "-");  // shard 0's other partition
    std::string token;
    for (const auto* skus : {&moving, &staying}) {
        for (const auto& sku : *skus) {
            for (int i = 0; i < 2; ++i) {
                auto res = receive(sku, "before-" + sku + "-" + std::to_string(i));
                ASSERT_EQ(res.status, 200) << res.body;
                token = res.json()["position"].get<std::string>();
            }
            EXPECT_EQ(stock(sku, token)["on_hand"], 4) << sku;
        }
    }
    // The move copies what is below the source's horizon before the fence. To be killed
    // while it copies under the fence, it must find events there that were not settled before
    // it: two receipts committed while a transaction older than them is open on shard 0. The
    // move waits at its fence for that transaction, which ends once the fence is seen.
    std::optional<pqxx::connection> holder;
    std::optional<pqxx::work> hold;
    std::jthread release;  // joined however the test ends
    if (point == "copy-batch") {
        holder.emplace(control_.admin_url());
        hold.emplace(*holder);
        hold->exec("SELECT pg_current_xact_id()");
        const auto late = skus_in(kMoved, 4, "m-" + suffix_ + "-").back();
        for (int i = 0; i < 2; ++i) {
            ASSERT_EQ(receive(late, "late-" + late + "-" + std::to_string(i)).status, 200);
        }
    }
    const auto before = events_in(control_, kMoved);
    ASSERT_EQ(before, point == "copy-batch" ? 8 : 6);

    // Killed right after `point`.
    if (hold) {
        release = std::jthread{[&] {
            eventually([&] { return fenced(control_, kMoved); }, 60s);
            hold->commit();
        }};
    }
    auto [killed, killed_log] = move(point);
    if (release.joinable()) release.join();
    ASSERT_EQ(killed, 128 + SIGKILL) << killed_log;
    if (point == "copy-batch") {
        EXPECT_NE(killed_log.find("\"message\":\"partition move: copied before the pause\""),
                  std::string::npos)
            << killed_log;
        EXPECT_EQ(events_in(second_, kMoved), 8) << "six before the fence, then a batch of two";
    }

    // Meanwhile: while it copies before the fence, the partition takes writes on the source;
    // from the fence until the destination takes the partition, its commands are refused
    // (503, Retry-After) and write nothing; a request already answered is answered again; the
    // other partitions go on.
    const bool precopying = point == "precopy-batch";
    const bool taken = point == "unfenced" || point == "removed";
    auto during = receive(moving[0], "during-" + moving[0]);
    if (precopying) {
        EXPECT_EQ(during.status, 200) << during.body;
        EXPECT_EQ(during.json()["position"].get<std::string>().rfind("0:", 0), 0u) << during.body;
        EXPECT_EQ(events_in(second_, kMoved), 2) << "one batch copied before the fence";
        EXPECT_FALSE(fenced(control_, kMoved));
    } else if (taken) {
        EXPECT_EQ(during.status, 200) << during.body;
    } else {
        EXPECT_EQ(during.status, 503) << during.body;
        EXPECT_FALSE(during.header("retry-after").empty());
    }
    auto replayed = receive(moving[1], "before-" + moving[1] + "-0");
    EXPECT_EQ(replayed.status, 200) << replayed.body;
    EXPECT_EQ(replayed.header("idempotent-replayed"), "true");
    EXPECT_EQ(receive(staying[0], "during-" + staying[0]).status, 200);

    // Run again: it goes on from its last step and finishes.
    auto [rc, out] = move();
    if (rc != 0) {
        for (const auto* db : {&control_, &second_}) {
            pqxx::connection conn{db->admin_url()};
            pqxx::read_transaction txn{conn};
            for (const auto& row :
                 txn.exec("SELECT stream_id, stream_version, moved_from, event_id, transaction_id, "
                          "global_position, recorded_at FROM ordo.events ORDER BY 5, 6")) {
                std::string line;
                for (const auto& f : row) line += std::string{f.is_null() ? "-" : f.c_str()} + " ";
                ADD_FAILURE() << "DEBUG " << db->name() << ": " << line;
            }
        }
    }
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("moved from shard 0 to shard 1"), std::string::npos) << out;
    // Again: there is nothing left to do.
    auto [again, again_out] = move();
    EXPECT_EQ(again, 0) << again_out;

    // The map gives it to shard 1, which holds every event once, as copies (the one written
    // during the copy before the fence among them); shard 0 holds none of it and fences it;
    // the move is recorded as done, with what it verified.
    const auto moved = before + (precopying ? 1 : 0);
    EXPECT_EQ(map_owner(kMoved), 1);
    EXPECT_EQ(events_in(control_, kMoved), 0);
    EXPECT_EQ(events_in(second_, kMoved), before + (taken || precopying ? 1 : 0));
    EXPECT_EQ(scalar(second_.admin_url(),
                     "SELECT count(*) FROM ordo.events WHERE moved_from = 0 AND stream_hash % " +
                         std::to_string(kPartitions) + " = " + std::to_string(kMoved)),
              moved);
    EXPECT_TRUE(fenced(control_, kMoved));
    EXPECT_FALSE(fenced(second_, kMoved));
    EXPECT_EQ(scalar(control_.admin_url(),
                     "SELECT count(*) FROM ordo.partition_moves WHERE step = 'done' AND events = " +
                         std::to_string(moved)),
              1);
    EXPECT_EQ(events_in(control_, 2), 5);  // the other partition: untouched, and written to

    // The command service, started with the old map, runs the partition's commands on
    // shard 1: new ones, the one refused meanwhile (sent again), and replays of requests
    // answered before the move (their command-log rows moved with the streams).
    auto after = receive(moving[2], "after-" + moving[2]);
    ASSERT_EQ(after.status, 200) << after.body;
    EXPECT_EQ(after.json()["position"].get<std::string>().rfind("1:", 0), 0u) << after.body;
    auto resent = receive(moving[0], "during-" + moving[0]);
    EXPECT_EQ(resent.status, 200) << resent.body;
    auto old = receive(moving[2], "before-" + moving[2] + "-1");
    EXPECT_EQ(old.header("idempotent-replayed"), "true") << old.body;
    EXPECT_EQ(events_in(second_, kMoved), before + 2);

    // Every event appended is published once: the copies are not (their originals were).
    // Each event is now stored once, the moved ones as copies on shard 1.
    platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
    const auto appended = scalar(control_.admin_url(), "SELECT count(*) FROM ordo.events") +
                          scalar(second_.admin_url(), "SELECT count(*) FROM ordo.events");
    EXPECT_TRUE(eventually([&] {
        return static_cast<std::int64_t>(nats.message_count(stream_)) == appended;
    })) << nats.message_count(stream_)
        << " messages, " << appended << " events appended";

    // The read models go on from where they were: the projector, whose checkpoints were
    // rebased, applies the new events (the destination's relay continues the partition's
    // chain from the copies) and none twice.
    EXPECT_EQ(stock(moving[2], after.json()["position"].get<std::string>())["on_hand"], 6);
    EXPECT_EQ(stock(moving[0], resent.json()["position"].get<std::string>())["on_hand"], 6);
    EXPECT_EQ(stock(moving[1], token)["on_hand"], 4);
    EXPECT_EQ(scalar(control_.admin_url(),
                     "SELECT count(*) FROM ordo.projection_checkpoints WHERE partition = " +
                         std::to_string(kMoved) + " AND shard IS DISTINCT FROM 1"),
              0);
    // And equal a rebuild from both shards, once the projector has stopped.
    auto& projector = *services_[2];
    EXPECT_TRUE(eventually([&] { return read_models_at_heads(); }))
        << "the projector did not catch up with both shards";
    projector.signal(SIGTERM);
    ASSERT_TRUE(projector.wait(30s));
    // Read models that keep store positions keep those of the shard an event was applied
    // from; a rebuild after the move reads the copies, at their positions on shard 1.
    for (const auto& difference : soak::differences_from_rebuild(
             control_, kPartitions,
             {{"read.trace_events", {"transaction_id", "global_position"}},
              {"read.orders", {"placed_position"}}})) {
        ADD_FAILURE() << difference;
    }
}

INSTANTIATE_TEST_SUITE_P(EachStep, ShardMoveKilled,
                         ::testing::Values("precopy-batch", "fenced", "drained", "copy-batch",
                                           "copied", "flipped", "unfenced", "removed"));

// The old shard no longer answers for a moved stream as if it were new: a service that still
// routes by the old map is told so (PartitionFenced) whether it reads, loads or writes, and
// reads the map again.
TEST_F(ShardMove, TheOldShardRefusesEveryReadAndWriteOfAMovedStream) {
    const auto sku = skus_in(kMoved, 1, "o-" + suffix_ + "-")[0];
    ASSERT_EQ(receive(sku, "before-" + sku).status, 200);
    auto [rc, out] = move();
    ASSERT_EQ(rc, 0) << out;
    platform::pg::Pool pool{{.url = control_.command_url(),
                             .size = 1,
                             .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore old_shard{pool, nullptr};
    const auto stream = "inventory-" + sku;
    EXPECT_EQ(scalar(control_.admin_url(),
                     "SELECT count(*) FROM ordo.streams WHERE stream_id = '" + stream + "'"),
              0);
    EXPECT_THROW(old_shard.read_stream(stream, 1, 10), eventstore::PartitionFenced);
    EXPECT_THROW(
        old_shard.transact([&](eventstore::Session& s) { s.lock_and_read(stream, 1, 10, 0); }),
        eventstore::PartitionFenced);
    EXPECT_THROW(old_shard.transact([&](eventstore::Session& s) { s.lock_stream(stream, 1); }),
                 eventstore::PartitionFenced);
    EXPECT_THROW(
        old_shard.transact([&](eventstore::Session& s) { s.claim_key("k-" + sku, "f", stream); }),
        eventstore::PartitionFenced);
    EXPECT_THROW(old_shard.append(stream, eventstore::ExpectedVersion::any(),
                                  {{platform::new_uuid(), "StockReceived", {{"quantity", 1}}, {}}}),
                 eventstore::PartitionFenced);
    // A stream of a partition the shard owns is new there, as ever.
    const auto other = "inventory-" + skus_in(2, 1, "n-" + suffix_ + "-")[0];
    EXPECT_TRUE(old_shard.read_stream(other, 1, 10).empty());
    old_shard.transact(
        [&](eventstore::Session& s) { EXPECT_EQ(s.lock_and_read(other, 1, 10, 0).version, 0); });
}

// Capacity grows by adding a shard: `shards add` registers an empty database (migrated,
// fenced against every partition) that owns nothing until a move gives it a partition. Its
// relay starts before that; the partition's streams then live there, commands and reads go
// on, and nothing of it is left on the old shard.
TEST_F(ShardMove, AShardAddedEmptyTakesAPartitionByAMove) {
    TestDatabase third{/*migrate=*/false, 1};
    auto shards = [&](std::vector<std::string> arguments) {
        arguments.insert(arguments.begin(), {"shards", "--database-url", control_.migrator_url()});
        return ordo(arguments, true);
    };
    // Refused, changing nothing, neither the control database nor the database named: an
    // id registered elsewhere, a location registered already (shard 1's, still empty), a
    // database that fences some partitions (another store's shard).
    auto fences = [](const TestDatabase& db) {
        return scalar(db.admin_url(), "SELECT count(*) FROM ordo.partition_fences");
    };
    const auto second_fences = fences(second_);
    auto [taken_id, taken_id_out] = shards({"add", "--shard", "1=" + location(third)});
    EXPECT_EQ(taken_id, 2) << taken_id_out;
    EXPECT_NE(taken_id_out.find("shard 1 is registered already"), std::string::npos)
        << taken_id_out;
    auto [taken_place, taken_place_out] = shards({"add", "--shard", "2=" + location(second_)});
    EXPECT_EQ(taken_place, 2) << taken_place_out;
    EXPECT_EQ(fences(second_), second_fences);
    TestDatabase other{/*migrate=*/true, 1};
    {
        pqxx::connection conn{other.admin_url()};
        pqxx::work txn{conn};
        txn.exec("INSERT INTO ordo.partition_fences (partition, partitions) VALUES (0, " +
                 std::to_string(kPartitions) + ")");
        txn.commit();
    }
    auto [foreign, foreign_out] = shards({"add", "--shard", "2=" + location(other)});
    EXPECT_EQ(foreign, 2) << foreign_out;
    EXPECT_NE(foreign_out.find("shard of a store already"), std::string::npos) << foreign_out;
    EXPECT_EQ(fences(other), 1);
    EXPECT_EQ(scalar(control_.admin_url(), "SELECT count(*) FROM ordo.shards"), 2);
    // Shard 1 takes writes as before.
    ASSERT_EQ(receive(skus_in(1, 1, "b-" + suffix_ + "-")[0], "b-" + suffix_).status, 200);

    // Added, and adding it again changes nothing.
    for (int run = 0; run < 2; ++run) {
        auto [rc, out] = shards({"add", "--shard", "2=" + location(third)});
        ASSERT_EQ(rc, 0) << out;
    }
    EXPECT_EQ(scalar(third.admin_url(), "SELECT count(*) FROM ordo.partition_fences"), kPartitions);
    auto [listed, list_out] = shards({"list", "--json"});
    ASSERT_EQ(listed, 0) << list_out;
    const auto listing = json::parse(list_out.substr(0, list_out.find('\n')));
    ASSERT_EQ(listing["shards"].size(), 3u) << list_out;
    EXPECT_EQ(listing["shards"][2]["id"], 2);
    EXPECT_TRUE(listing["shards"][2]["partitions"].empty()) << list_out;

    // Its relay runs before it owns anything; then the partition moves to it.
    services_.push_back(serve({"relay", "--shard", "2"}, env_));
    const auto sku = skus_in(kMoved, 1, "a-" + suffix_ + "-")[0];
    ASSERT_EQ(receive(sku, "before-" + sku).status, 200);
    auto [rc, out] = move("", {"--to", "2"});
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(map_owner(kMoved), 2);
    auto after = receive(sku, "after-" + sku);
    ASSERT_EQ(after.status, 200) << after.body;
    EXPECT_EQ(stock(sku, after.json()["position"].get<std::string>())["on_hand"], 4);
    EXPECT_EQ(events_in(third, kMoved), 2);
    EXPECT_EQ(events_in(control_, kMoved), 0);
    // Run again once it holds a partition, it finds its work done.
    auto [again, again_out] = shards({"add", "--shard", "2=" + location(third)});
    EXPECT_EQ(again, 0) << again_out;
    // Every event published once (shard 1's receipt and the moved partition's two), the
    // last by the new shard's relay.
    platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
    EXPECT_TRUE(eventually([&] { return nats.message_count(stream_) == 3; }))
        << nats.message_count(stream_);
}

// A transaction older than the fence still open when the wait for it runs out: the move
// gives up rather than leave the partition paused for as long as that transaction lasts. The
// source takes the partition's writes again and the destination keeps none of what was
// copied before the fence; the move, run again once the transaction has ended, finishes.
TEST_F(ShardMove, AnOlderTransactionOpenAtTheFenceRollsTheMoveBackCopiesAndAll) {
    const auto moving = skus_in(kMoved, 2, "t-" + suffix_ + "-");
    for (const auto& sku : moving) ASSERT_EQ(receive(sku, "before-" + sku).status, 200);
    pqxx::connection holder{control_.admin_url()};
    pqxx::work hold{holder};
    hold.exec("SELECT pg_current_xact_id()");
    auto [stopped, stopped_out] = move("", {"--to", "1", "--wait-timeout", "1"});
    EXPECT_EQ(stopped, 1) << stopped_out;
    EXPECT_NE(stopped_out.find("older than the fence is still open"), std::string::npos)
        << stopped_out;
    EXPECT_NE(stopped_out.find("\"message\":\"partition move: copied before the pause\""),
              std::string::npos)
        << stopped_out;
    EXPECT_EQ(map_owner(kMoved), 0);
    EXPECT_FALSE(fenced(control_, kMoved));
    EXPECT_TRUE(fenced(second_, kMoved));
    EXPECT_EQ(events_in(second_, kMoved), 0);
    EXPECT_EQ(scalar(control_.admin_url(),
                     "SELECT count(*) FROM ordo.partition_moves WHERE step = 'rolled_back'"),
              1);
    auto during = receive(moving[0], "during-" + moving[0]);
    ASSERT_EQ(during.status, 200) << during.body;
    EXPECT_EQ(during.json()["position"].get<std::string>().rfind("0:", 0), 0u) << during.body;
    hold.commit();
    auto [rc, out] = move();
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(map_owner(kMoved), 1);
    EXPECT_EQ(events_in(second_, kMoved), 3);
    EXPECT_EQ(events_in(control_, kMoved), 0);
}

// The source shard's relay must have published the partition's last event before the map
// flips: nothing would publish it afterwards. While it has not, the move stops before the
// flip, and goes on once the relay has.
TEST_F(ShardMove, WaitsForTheSourceRelayToPublishThePartitionBeforeTheFlip) {
    services_[0].reset();  // shard 0's relay
    const auto sku = skus_in(kMoved, 1, "w-" + suffix_ + "-")[0];
    ASSERT_EQ(receive(sku, "before-" + sku).status, 200);
    auto [stopped, stopped_out] = move("", {"--to", "1", "--wait-timeout", "2"});
    EXPECT_EQ(stopped, 1) << stopped_out;
    EXPECT_NE(stopped_out.find("has not published"), std::string::npos) << stopped_out;
    EXPECT_EQ(map_owner(kMoved), 0);
    services_[0] = serve({"relay", "--shard", "0"}, env_);
    auto [rc, out] = move();
    ASSERT_EQ(rc, 0) << out;
    platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
    EXPECT_TRUE(eventually([&] { return nats.message_count(stream_) == 1; }))
        << nats.message_count(stream_);
}

TEST_F(ShardMove, RolledBackBeforeTheFlipThePartitionStaysAndTakesWritesAgain) {
    const auto moving = skus_in(kMoved, 2, "r-" + suffix_ + "-");
    for (const auto& sku : moving) ASSERT_EQ(receive(sku, "before-" + sku).status, 200);

    auto [killed, killed_log] = move("copied");
    ASSERT_EQ(killed, 128 + SIGKILL) << killed_log;
    EXPECT_EQ(events_in(second_, kMoved), 2);  // the copies
    EXPECT_EQ(receive(moving[0], "during-" + moving[0]).status, 503);

    // Another shard while one move is open: refused, and nothing changes.
    auto [other, other_out] = move("", {"--to", "0"});
    EXPECT_EQ(other, 2) << other_out;
    EXPECT_NE(other_out.find("is being moved to shard 1"), std::string::npos) << other_out;

    auto [rc, out] = move("", {"--rollback"});
    ASSERT_EQ(rc, 0) << out;
    EXPECT_NE(out.find("stays on shard 0"), std::string::npos) << out;
    EXPECT_EQ(map_owner(kMoved), 0);
    EXPECT_EQ(events_in(second_, kMoved), 0);
    EXPECT_EQ(events_in(control_, kMoved), 2);
    EXPECT_FALSE(fenced(control_, kMoved));
    EXPECT_TRUE(fenced(second_, kMoved));
    auto resent = receive(moving[0], "during-" + moving[0]);
    ASSERT_EQ(resent.status, 200) << resent.body;
    EXPECT_EQ(resent.json()["position"].get<std::string>().rfind("0:", 0), 0u);
    EXPECT_EQ(events_in(control_, kMoved), 3);
}

// A copy that differs from the original stops the move before the flip, names the events
// only one side holds, and changes nothing; rolled back and run again, the move completes.
TEST_F(ShardMove, ACopyThatDiffersStopsBeforeTheFlipAndNamesTheStrayEvents) {
    const auto moving = skus_in(kMoved, 2, "d-" + suffix_ + "-");
    for (const auto& sku : moving) ASSERT_EQ(receive(sku, "before-" + sku).status, 200);
    auto [killed, killed_log] = move("copied");
    ASSERT_EQ(killed, 128 + SIGKILL) << killed_log;
    // An event the source never had, among the copies on the destination.
    const std::string stray = "00000000-0000-4000-8000-0000000000d1";
    pqxx::connection tamper{second_.admin_url()};
    pqxx::work txn{tamper};
    txn.exec_params(
        "INSERT INTO ordo.events (stream_id, category, stream_version, event_id, event_type, "
        "schema_version, payload, metadata, moved_from) VALUES ($1, 'inventory', 99, $2, "
        "'StockReceived', 1, '{}', '{}', 0)",
        "inventory-" + moving[0], stray);
    txn.commit();

    auto [differs, differs_out] = move();
    EXPECT_EQ(differs, 1) << differs_out;
    EXPECT_NE(differs_out.find("the copy differs from the original"), std::string::npos)
        << differs_out;
    EXPECT_NE(differs_out.find("\"differing\":{\"lists_cut_short\":false,"
                               "\"only_at_destination\":[\"" +
                               stray + "\"],\"only_at_source\":[]}"),
              std::string::npos)
        << differs_out;
    EXPECT_EQ(map_owner(kMoved), 0);
    EXPECT_TRUE(fenced(control_, kMoved));

    auto [rolled, rolled_out] = move("", {"--rollback"});
    ASSERT_EQ(rolled, 0) << rolled_out;
    EXPECT_EQ(events_in(second_, kMoved), 0);
    auto [rc, out] = move();
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(map_owner(kMoved), 1);
    EXPECT_EQ(events_in(second_, kMoved), 2);
    EXPECT_EQ(events_in(control_, kMoved), 0);
}

TEST_F(ShardMove, AFlippedMoveCannotBeRolledBackAndRefusalsChangeNothing) {
    ASSERT_EQ(receive(skus_in(kMoved, 1, "f-" + suffix_ + "-")[0], "before").status, 200);
    // Not a registered shard; the shard it is on already.
    auto [unknown, unknown_out] = move("", {"--to", "7"});
    EXPECT_EQ(unknown, 2) << unknown_out;
    EXPECT_NE(unknown_out.find("not registered"), std::string::npos) << unknown_out;
    auto [same, same_out] = move("", {"--to", "0"});
    EXPECT_EQ(same, 0) << same_out;
    EXPECT_EQ(scalar(control_.admin_url(), "SELECT count(*) FROM ordo.partition_moves"), 0);
    EXPECT_FALSE(fenced(control_, kMoved));

    auto [killed, killed_log] = move("flipped");
    ASSERT_EQ(killed, 128 + SIGKILL) << killed_log;
    auto [refused, refused_out] = move("", {"--rollback"});
    EXPECT_EQ(refused, 2) << refused_out;
    EXPECT_NE(refused_out.find("move it back with --to 0"), std::string::npos) << refused_out;
    auto [rc, out] = move();
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(map_owner(kMoved), 1);
    EXPECT_EQ(events_in(control_, kMoved), 0);
    EXPECT_EQ(events_in(second_, kMoved), 1);
    // And back: a partition can return to a shard it left.
    auto [back, back_out] = move("", {"--to", "0"});
    ASSERT_EQ(back, 0) << back_out;
    EXPECT_EQ(map_owner(kMoved), 0);
    EXPECT_EQ(events_in(control_, kMoved), 1);
    EXPECT_EQ(events_in(second_, kMoved), 0);
    EXPECT_FALSE(fenced(control_, kMoved));
    EXPECT_TRUE(fenced(second_, kMoved));
}

// A source shard that keeps idempotency keys from before migration 0017 (no stream recorded):
// the move is refused, saying until when and how to move anyway, and changes nothing; with
// --ignore-unrouted-keys it moves, and the key stays on the old shard.
TEST_F(ShardMove, KeysThatRecordNoStreamRefuseAMoveUnlessItIsToldToLeaveThem) {
    ASSERT_EQ(receive(skus_in(kMoved, 1, "u-" + suffix_ + "-")[0], "before").status, 200);
    {
        pqxx::connection admin{control_.admin_url()};
        pqxx::work tx{admin};
        tx.exec(
            "INSERT INTO ordo.command_log (key, fingerprint, status, response, created_at) "
            "VALUES ('before-0017', 'f', 200, '{}', date_trunc('second', now()) - "
            "interval '1 hour')");
        tx.commit();
    }
    auto [refused, refused_out] = move();
    EXPECT_EQ(refused, 2) << refused_out;
    EXPECT_NE(refused_out.find("keeps 1 idempotency key written by a release before migration "
                               "0017"),
              std::string::npos)
        << refused_out;
    const auto newest = [&] {
        pqxx::connection admin{control_.admin_url()};
        pqxx::read_transaction tx{admin};
        return tx
            .exec1(
                "SELECT to_char(created_at AT TIME ZONE 'UTC', "
                "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') FROM ordo.command_log "
                "WHERE key = 'before-0017'")[0]
            .as<std::string>();
    }();
    EXPECT_NE(refused_out.find("written at " + newest), std::string::npos) << refused_out;
    EXPECT_NE(refused_out.find("--ignore-unrouted-keys"), std::string::npos) << refused_out;
    EXPECT_EQ(scalar(control_.admin_url(), "SELECT count(*) FROM ordo.partition_moves"), 0);
    EXPECT_FALSE(fenced(control_, kMoved));
    EXPECT_EQ(map_owner(kMoved), 0);

    auto [rc, out] = move("", {"--to", "1", "--ignore-unrouted-keys"});
    ASSERT_EQ(rc, 0) << out;
    EXPECT_EQ(map_owner(kMoved), 1);
    EXPECT_EQ(events_in(second_, kMoved), 1);
    EXPECT_EQ(scalar(control_.admin_url(),
                     "SELECT count(*) FROM ordo.command_log WHERE key = 'before-0017'"),
              1);
}

}  // namespace
}  // namespace ordo::testing
