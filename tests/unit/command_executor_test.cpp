// The command executor and the repository on the in-memory store: given a stream's past
// events, when a command runs through the executor, then these events are stored (or this
// refusal, and nothing).
#include <gtest/gtest.h>

#include <map>
#include <string>
#include <vector>

#include "command/aggregate.hpp"
#include "command/executor.hpp"
#include "eventstore/memory_store.hpp"
#include "eventstore/shard_map.hpp"
#include "platform/core/clock.hpp"
#include "platform/core/metrics.hpp"

namespace ordo::command {
namespace {

using domain::inventory::ReceiveStock;
using domain::inventory::ReserveStock;
using domain::inventory::StockReceived;
using domain::inventory::StockReserved;
using eventstore::Session;

constexpr const char* kStream = "inventory-sku-1";

class ExecutorOnMemory : public ::testing::Test {
   protected:
    // given: these events are the stream's history.
    void given(const std::vector<domain::inventory::Event>& history) {
        std::vector<eventstore::NewEvent> batch;
        for (const auto& e : history) {
            batch.push_back(
                {platform::new_uuid(), std::string{event_type(e)}, encode_payload(e), {}});
        }
        store_.append(kStream, eventstore::ExpectedVersion::any(), batch);
    }

    // A unit that runs `command` on the stream and answers 200 (or 409 when refused).
    template <class Command>
    std::function<ApiResponse(Session&)> unit(Command command) {
        return [this, command](Session& session) {
            ++runs_;
            auto done = execute<InventoryTraits>(session, kStream, command, CommandContext{});
            return ApiResponse{
                done.rejection ? 409 : 200, {{"version", done.version}}, false, done.appended};
        };
    }

    // then: the stream holds exactly these event types, in order.
    std::vector<std::string> stored_types() {
        std::vector<std::string> types;
        for (const auto& e : store_.read_stream(kStream, 1, 10'000)) types.push_back(e.type);
        return types;
    }

    double counter(const char* name) { return metrics_.counter(name, "").value(); }

    platform::ManualClock clock_;
    eventstore::MemoryStore store_{clock_};
    platform::metrics::Registry metrics_;
    Executor executor_{
        store_, metrics_, platform::Logger::null_logger(),
        Executor::Options{.max_attempts = 3, .base_backoff = std::chrono::milliseconds{1}}};
    int runs_ = 0;
};

TEST_F(ExecutorOnMemory, AppendsWhatTheDeciderDecidedAtTheVersionItDecidedOn) {
    given({StockReceived{"sku-1", 5}});
    auto reply = executor_.run(kStream, std::nullopt, unit(ReserveStock{"sku-1", "o-1", 3}));
    EXPECT_EQ(reply.status, 200);
    EXPECT_TRUE(reply.appended);
    EXPECT_EQ(reply.body["version"], 2);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived", "StockReserved"}));
    EXPECT_EQ(counter("ordo_command_appends_total"), 1);
}

TEST_F(ExecutorOnMemory, ARefusalAppendsNothing) {
    given({StockReceived{"sku-1", 5}});
    auto reply = executor_.run(kStream, std::nullopt, unit(ReserveStock{"sku-1", "o-1", 6}));
    EXPECT_EQ(reply.status, 409);
    EXPECT_FALSE(reply.appended);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived"}));
    EXPECT_EQ(counter("ordo_command_appends_total"), 0);
}

TEST_F(ExecutorOnMemory, AConflictRunsTheWholeUnitAgainOnAFreshSession) {
    given({StockReceived{"sku-1", 5}});
    auto decide_once = unit(ReserveStock{"sku-1", "o-1", 3});
    auto reply = executor_.run(kStream, std::nullopt, [&](Session& session) {
        auto reply = decide_once(session);
        // A writer got in between (as on a new stream): this attempt's append must vanish.
        if (runs_ == 1) {
            throw eventstore::ConcurrencyConflict(kStream, eventstore::ExpectedVersion::exact(1),
                                                  2);
        }
        return reply;
    });
    EXPECT_EQ(runs_, 2);
    EXPECT_EQ(reply.body["version"], 2);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived", "StockReserved"}));
    EXPECT_EQ(counter("ordo_command_conflicts_total"), 1);
}

TEST_F(ExecutorOnMemory, ConflictsBeyondMaxAttemptsPropagate) {
    EXPECT_THROW(executor_.run(kStream, std::nullopt,
                               [&](Session& session) -> ApiResponse {
                                   ++runs_;
                                   session.append(
                                       kStream, eventstore::ExpectedVersion::exact(7),
                                       {{platform::new_uuid(), "StockReceived", {}, {}}});
                                   return {};
                               }),
                 eventstore::ConcurrencyConflict);
    EXPECT_EQ(runs_, 3);
    EXPECT_EQ(counter("ordo_command_conflicts_total"), 3);
    EXPECT_TRUE(stored_types().empty());
}

TEST_F(ExecutorOnMemory, ARepeatedKeyReplaysTheFirstOutcomeWithoutDecidingAgain) {
    given({StockReceived{"sku-1", 5}});
    const Dedup dedup{"http:caller:k1", "reserve o-1 3"};
    auto first = executor_.run(kStream, dedup, unit(ReserveStock{"sku-1", "o-1", 3}));
    auto again = executor_.run(kStream, dedup, unit(ReserveStock{"sku-1", "o-1", 3}));
    EXPECT_EQ(runs_, 1);
    EXPECT_FALSE(first.replayed);
    EXPECT_TRUE(again.replayed);
    EXPECT_FALSE(again.appended);
    EXPECT_EQ(again.status, first.status);
    EXPECT_EQ(again.body, first.body);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived", "StockReserved"}));
    EXPECT_EQ(counter("ordo_command_replays_total"), 1);
}

TEST_F(ExecutorOnMemory, AKeyUsedForAnotherRequestIsRefused) {
    given({StockReceived{"sku-1", 5}});
    executor_.run(kStream, Dedup{"http:caller:k1", "reserve o-1 3"},
                  unit(ReserveStock{"sku-1", "o-1", 3}));
    EXPECT_THROW(executor_.run(kStream, Dedup{"http:caller:k1", "reserve o-2 1"},
                               unit(ReserveStock{"sku-1", "o-2", 1})),
                 KeyReused);
    EXPECT_EQ(runs_, 1);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived", "StockReserved"}));
}

TEST_F(ExecutorOnMemory, AServerErrorIsNeitherRecordedNorCommitted) {
    given({StockReceived{"sku-1", 5}});
    const Dedup dedup{"cmd:c1", "reserve o-1 3"};
    auto decide = unit(ReserveStock{"sku-1", "o-1", 3});
    EXPECT_THROW(executor_.run(kStream, dedup,
                               [&](Session& session) {
                                   auto reply = decide(session);
                                   reply.status = 503;
                                   return reply;
                               }),
                 std::logic_error);
    EXPECT_EQ(store_.key_count(), 0u);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived"}));
    // The key is still free: the request may be retried and then takes effect.
    auto retried = executor_.run(kStream, dedup, unit(ReserveStock{"sku-1", "o-1", 3}));
    EXPECT_FALSE(retried.replayed);
    EXPECT_TRUE(retried.appended);
}

TEST_F(ExecutorOnMemory, AFailedUnitLeavesNothingBehind) {
    given({StockReceived{"sku-1", 5}});
    auto decide = unit(ReserveStock{"sku-1", "o-1", 3});
    EXPECT_THROW(executor_.run(kStream, Dedup{"cmd:c1", "f"},
                               [&](Session& session) -> ApiResponse {
                                   decide(session);
                                   throw std::runtime_error("the unit broke after appending");
                               }),
                 std::runtime_error);
    EXPECT_EQ(runs_, 1);  // not a conflict: not retried
    EXPECT_EQ(store_.key_count(), 0u);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived"}));
    EXPECT_EQ(counter("ordo_command_appends_total"), 0);
}

TEST_F(ExecutorOnMemory, ExpiresKeysOlderThanTheAgeInBoundedBatches) {
    for (int i = 0; i < 3; ++i) {
        executor_.run(kStream, Dedup{"cmd:old-" + std::to_string(i), "f"},
                      unit(ReceiveStock{"sku-1", 1}));
    }
    clock_.advance(std::chrono::hours{49});
    executor_.run(kStream, Dedup{"cmd:new", "f"}, unit(ReceiveStock{"sku-1", 1}));
    auto first = executor_.expire(std::chrono::hours{48}, 2, 1);
    EXPECT_EQ(first.records, 2);
    EXPECT_EQ(first.batches, 1);
    auto rest = executor_.expire(std::chrono::hours{48}, 2);
    EXPECT_EQ(rest.records, 1);
    EXPECT_EQ(store_.key_count(), 1u);
    EXPECT_THROW(executor_.expire(std::chrono::hours{48}, 0), std::invalid_argument);
}

TEST_F(ExecutorOnMemory, SnapshotsEveryHundredVersionsAndLoadsFromTheSnapshot) {
    given(std::vector<domain::inventory::Event>(99, StockReceived{"sku-1", 1}));
    executor_.run(kStream, std::nullopt, unit(ReceiveStock{"sku-1", 1}));
    auto snapshot = store_.transact(
        [](Session& s) { return s.lock_stream(kStream, eventstore::kSnapshotFormat); });
    ASSERT_TRUE(snapshot);
    EXPECT_EQ(snapshot->version, eventstore::kSnapshotEvery);
    store_.transact([](Session& s) {
        auto loaded = eventstore::load<InventoryTraits>(s, kStream);
        EXPECT_EQ(loaded.version, 100);
        EXPECT_EQ(loaded.folded, 0);  // everything came from the snapshot
        EXPECT_EQ(loaded.state.on_hand, 100);
        EXPECT_TRUE(loaded.last);
    });
}

// A unit that loads the stream through the executor's session and answers with what it
// loaded: the version, the events folded past where the load started, the stock on hand.
std::function<ApiResponse(Session&)> loads(eventstore::Loaded<InventoryTraits>& loaded) {
    return [&loaded](Session& session) {
        loaded = eventstore::load<InventoryTraits>(session, kStream);
        return ApiResponse{};
    };
}

TEST_F(ExecutorOnMemory, AKeptFoldIsLoadedWithOnlyTheEventsAfterIt) {
    given({StockReceived{"sku-1", 5}, StockReceived{"sku-1", 2}});
    executor_.run(kStream, std::nullopt, unit(ReceiveStock{"sku-1", 1}));
    // Another process writes the stream meanwhile.
    given({StockReceived{"sku-1", 10}});
    eventstore::Loaded<InventoryTraits> loaded;
    executor_.run(kStream, std::nullopt, loads(loaded));
    EXPECT_EQ(loaded.version, 4);
    EXPECT_EQ(loaded.folded, 1);  // only the other process's event
    EXPECT_EQ(loaded.state.on_hand, 18);
    EXPECT_EQ(loaded.last, store_.read_stream(kStream, 4, 1).at(0).checkpoint());
    // The store's own sessions keep none: the same load there folds every event.
    auto fresh =
        store_.transact([](Session& s) { return eventstore::load<InventoryTraits>(s, kStream); });
    EXPECT_EQ(fresh.folded, 4);
    EXPECT_EQ(fresh.state.on_hand, 18);
}

TEST_F(ExecutorOnMemory, AFoldIsKeptOnlyOnceItsUnitCommitted) {
    given({StockReceived{"sku-1", 5}});
    // The unit appends and returns, and the unit of work then fails: a 5xx outcome is never
    // recorded, so its transaction rolls back.
    auto receive = unit(ReceiveStock{"sku-1", 100});
    EXPECT_THROW(executor_.run(kStream, Dedup{"k", "f"},
                               [&](Session& session) {
                                   auto reply = receive(session);
                                   reply.status = 500;
                                   return reply;
                               }),
                 std::logic_error);
    EXPECT_EQ(stored_types(), (std::vector<std::string>{"StockReceived"}));
    // Version 2 is now another event than the one the failed unit folded.
    given({StockReceived{"sku-1", 1}});
    eventstore::Loaded<InventoryTraits> loaded;
    executor_.run(kStream, std::nullopt, loads(loaded));
    EXPECT_EQ(loaded.version, 2);
    EXPECT_EQ(loaded.folded, 2);
    EXPECT_EQ(loaded.state.on_hand, 6);
}

// One shard, whose store the test swaps under the executor.
class SwappedShard final : public eventstore::Shards {
   public:
    explicit SwappedShard(eventstore::Store& first) : store{&first} {}
    eventstore::Store& of(const std::string&) override { return *store; }
    std::vector<eventstore::Store*> all() override { return {store}; }
    std::optional<int> shard_id(const std::string&) const override { return std::nullopt; }
    eventstore::Store* store;
};

TEST_F(ExecutorOnMemory, AFoldOfAnotherHistoryThanTheStoredOneIsNotStartedFrom) {
    // A fold kept on a store where the stream went further than where it is read now (a
    // shard restored from an older backup, say).
    eventstore::MemoryStore further{clock_};
    SwappedShard shard{further};
    platform::metrics::Registry metrics;
    Executor executor{shard, metrics, platform::Logger::null_logger(), {}};
    for (int i = 0; i < 3; ++i) executor.run(kStream, std::nullopt, unit(ReceiveStock{"sku-1", 1}));
    given({StockReceived{"sku-1", 7}});
    shard.store = &store_;
    // No event at the kept version here: the load reads the stream from its start.
    eventstore::Loaded<InventoryTraits> loaded;
    executor.run(kStream, std::nullopt, loads(loaded));
    EXPECT_EQ(loaded.version, 1);
    EXPECT_EQ(loaded.folded, 1);
    EXPECT_EQ(loaded.state.on_hand, 7);
    // Another process takes the stream past the kept version: an event there, but another
    // than the one the kept fold ends with.
    given({StockReceived{"sku-1", 1}, StockReceived{"sku-1", 1}});
    executor.run(kStream, std::nullopt, loads(loaded));
    EXPECT_EQ(loaded.version, 3);
    EXPECT_EQ(loaded.folded, 3);
    EXPECT_EQ(loaded.state.on_hand, 9);
    // A command leaves its fold of the stream as stored, in place of the other.
    executor.run(kStream, std::nullopt, unit(ReceiveStock{"sku-1", 1}));
    executor.run(kStream, std::nullopt, loads(loaded));
    EXPECT_EQ(loaded.version, 4);
    EXPECT_EQ(loaded.folded, 0);
    EXPECT_EQ(loaded.state.on_hand, 10);
}

TEST_F(ExecutorOnMemory, KeepsNoFoldWhenToldToKeepNone) {
    platform::metrics::Registry metrics;
    Executor executor{store_, metrics, platform::Logger::null_logger(), {.kept_folds = 0}};
    executor.run(kStream, std::nullopt, unit(ReceiveStock{"sku-1", 2}));
    executor.run(kStream, std::nullopt, unit(ReceiveStock{"sku-1", 3}));
    eventstore::Loaded<InventoryTraits> loaded;
    executor.run(kStream, std::nullopt, loads(loaded));
    EXPECT_EQ(loaded.folded, 2);
    EXPECT_EQ(loaded.state.on_hand, 5);
}

TEST_F(ExecutorOnMemory, AnUnlockedCommandKeepsItsFoldToo) {
    platform::metrics::Registry metrics;
    Executor executor{store_, metrics, platform::Logger::null_logger(), {.unlocked_first = true}};
    given({StockReceived{"sku-1", 4}});
    executor.run(kStream, std::nullopt, unit(ReceiveStock{"sku-1", 2}));
    // A refusal keeps the fold it loaded as well.
    given({StockReceived{"sku-1", 1}});
    auto refused = executor.run(kStream, std::nullopt, unit(ReserveStock{"sku-1", "o-1", 100}));
    EXPECT_EQ(refused.status, 409);
    eventstore::Loaded<InventoryTraits> loaded;
    executor.run(kStream, std::nullopt, loads(loaded));
    EXPECT_EQ(loaded.version, 3);
    EXPECT_EQ(loaded.folded, 0);
    EXPECT_EQ(loaded.state.on_hand, 7);
    // What a refusal would answer with: the checkpoint of the last event, read at this load.
    EXPECT_EQ(loaded.last, store_.read_stream(kStream, 3, 1).at(0).checkpoint());
}

TEST_F(ExecutorOnMemory, AnUnreadableEventNamesItsIdTypeAndStream) {
    given({StockReceived{"sku-1", 5}});
    const auto id = platform::new_uuid();
    store_.append(kStream, eventstore::ExpectedVersion::exact(1), {{id, "FromTheFuture", {}, {}}});
    try {
        executor_.run(kStream, std::nullopt, unit(ReserveStock{"sku-1", "o-1", 3}));
        FAIL() << "an unreadable event was folded";
    } catch (const eventstore::UnreadableEvent& e) {
        EXPECT_EQ(std::string{e.what()},
                  "cannot read event " + id + " (FromTheFuture) of " + kStream);
    }
}

// Two shards, each a store of its own, routed by a written map of 8 partitions.
class TwoMemoryShards final : public eventstore::Shards {
   public:
    explicit TwoMemoryShards(const platform::Clock& clock) : first{clock}, second{clock} {}
    eventstore::Store& of(const std::string& stream) override {
        return map.shard_of(stream) == 0 ? static_cast<eventstore::Store&>(first) : second;
    }
    std::vector<eventstore::Store*> all() override { return {&first, &second}; }
    std::optional<int> shard_id(const std::string& stream) const override {
        return map.shard_of(stream);
    }

    eventstore::ShardMap map =
        eventstore::ShardMap::spread(8, {{0, "db0", "ordo"}, {1, "db1", "ordo"}});
    eventstore::MemoryStore first;
    eventstore::MemoryStore second;
};

TEST(ExecutorOnShards, RunsEachCommandOnItsStreamsShardAndExpiresKeysOnEvery) {
    platform::ManualClock clock;
    TwoMemoryShards shards{clock};
    platform::metrics::Registry metrics;
    Executor executor{shards, metrics, platform::Logger::null_logger(), {}};
    std::map<int, int> per_shard;
    for (int i = 0; i < 20; ++i) {
        const auto sku = "sku-" + std::to_string(i);
        const auto stream = "inventory-" + sku;
        auto receive = [&](Session& session) {
            auto done =
                execute<InventoryTraits>(session, stream, ReceiveStock{sku, 2}, CommandContext{});
            return ApiResponse{200,
                               {{"version", done.version}, {"position", done.checkpoint->token()}},
                               false,
                               done.appended};
        };
        auto reply = executor.run(stream, Dedup{"cmd:" + stream, "f"}, receive);
        auto again = executor.run(stream, Dedup{"cmd:" + stream, "f"}, receive);
        EXPECT_FALSE(reply.replayed);
        EXPECT_TRUE(again.replayed) << "the key is kept on the stream's shard";
        const int shard = shards.map.shard_of(stream);
        // The position names the shard whose commit order it is in, replays included.
        auto token = eventstore::ShardToken::parse(reply.body["position"].get<std::string>());
        ASSERT_TRUE(token);
        EXPECT_EQ(token->shard, shard);
        EXPECT_EQ(reply.body["position"].get<std::string>().rfind(std::to_string(shard) + ":", 0),
                  0u);
        EXPECT_EQ(again.body["position"], reply.body["position"]);
        auto& own = shard == 0 ? shards.first : shards.second;
        auto& other = shard == 0 ? shards.second : shards.first;
        EXPECT_EQ(own.read_stream(stream, 1, 10).size(), 1u) << stream;
        EXPECT_TRUE(other.read_stream(stream, 1, 10).empty()) << stream;
        ++per_shard[shard];
    }
    EXPECT_GT(per_shard[0], 0);
    EXPECT_GT(per_shard[1], 0);
    clock.advance(std::chrono::hours{49});
    auto expired = executor.expire(std::chrono::hours{48}, 5);
    EXPECT_EQ(expired.records, 20);
    EXPECT_EQ(shards.first.key_count() + shards.second.key_count(), 0u);
}

}  // namespace
}  // namespace ordo::command
