// Commands without a key on PostgreSQL (Executor::Options::unlocked_first): the first attempt
// holds no lock while it decides, a stream written meanwhile sends the command round again
// holding the stream's lock, and writers of one stream in two processes lose no update; and
// the folds each process keeps (Executor::Options::kept_folds) are read on from there.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include <pqxx/pqxx>

#include "command/aggregate.hpp"
#include "command/executor.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/repository.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::command {
namespace {

using eventstore::EventStore;
using eventstore::ExpectedVersion;
using eventstore::Session;

constexpr const char* kStream = "inventory-sku-u";

struct Instance {
    explicit Instance(const std::string& url)
        : pool{{.url = url, .size = 4, .preparers = {&EventStore::prepare}}},
          executor{store, metrics, platform::Logger::null_logger(),
                   Executor::Options{.unlocked_first = true}} {}
    platform::pg::Pool pool;
    EventStore store{pool};
    platform::metrics::Registry metrics;
    Executor executor;
};

class UnlockedCommands : public ::testing::Test {
   protected:
    // Another process's append to the stream that waits for no lock: "appended", or "busy"
    // when a transaction holds the stream.
    std::string append_elsewhere() {
        pqxx::nontransaction tx{outside_};
        return tx
            .exec_params1(
                "SELECT out_outcome FROM ordo.append_events($1, -1, $2::jsonb, false)", kStream,
                nlohmann::json::array({{{"event_id", platform::new_uuid()},
                                        {"type", "StockReceived"},
                                        {"payload", {{"sku", "sku-u"}, {"quantity", 1}}}}})
                    .dump())[0]
            .as<std::string>();
    }

    // A unit that reads the stream's head, lets another process try to write the stream, then
    // appends one receipt at the version it read.
    std::function<ApiResponse(Session&)> interrupted_unit() {
        return [this](Session& session) {
            auto head = session.lock_and_read(kStream, eventstore::kSnapshotFormat, 100, 0);
            elsewhere_.push_back(append_elsewhere());
            auto appended = session.append(
                kStream, ExpectedVersion::exact(head.version),
                {{platform::new_uuid(), "StockReceived", {{"sku", "sku-u"}, {"quantity", 1}}, {}}});
            return ApiResponse{200, {{"version", appended.last_version}}, false, true};
        };
    }

    double conflicts() { return one_.metrics.counter("ordo_command_conflicts_total", "").value(); }

    testing::TestDatabase db_;
    Instance one_{db_.command_url()};
    pqxx::connection outside_{db_.command_url()};
    std::vector<std::string> elsewhere_;
};

TEST_F(UnlockedCommands, TheFirstAttemptHoldsNoLockAndAConflictRunsItAgainHoldingOne) {
    one_.store.append(
        kStream, ExpectedVersion::no_stream(),
        {{platform::new_uuid(), "StockReceived", {{"sku", "sku-u"}, {"quantity", 5}}, {}}});
    auto reply = one_.executor.run(kStream, std::nullopt, interrupted_unit());
    // Unlocked, the other process wrote the stream, and the append at the version read was
    // refused; locked, the other process found the stream held.
    EXPECT_EQ(elsewhere_, (std::vector<std::string>{"appended", "busy"}));
    EXPECT_EQ(reply.status, 200);
    EXPECT_EQ(reply.body["version"], 3);
    EXPECT_EQ(one_.store.stream_version(kStream), 3);
    EXPECT_EQ(conflicts(), 1);
}

TEST_F(UnlockedCommands, ACommandWithAKeyHoldsTheLockFromItsFirstAttempt) {
    one_.store.append(
        kStream, ExpectedVersion::no_stream(),
        {{platform::new_uuid(), "StockReceived", {{"sku", "sku-u"}, {"quantity", 5}}, {}}});
    auto reply =
        one_.executor.run(kStream, Dedup{"http:caller:k-u", "receipt"}, interrupted_unit());
    EXPECT_EQ(elsewhere_, (std::vector<std::string>{"busy"}));
    EXPECT_EQ(reply.body["version"], 2);
    EXPECT_EQ(conflicts(), 0);
}

// Two command processes, four writers each, receipts of one unit on one stream: every
// receipt is counted once, the versions have no gap, and the snapshots every hundred
// versions were saved after the appends that crossed them.
TEST_F(UnlockedCommands, WritersOfOneStreamInTwoProcessesLoseNoUpdate) {
    Instance two{db_.command_url()};
    constexpr int kWriters = 4;
    constexpr int kReceipts = 25;
    std::vector<std::thread> writers;
    std::atomic<int> failed{0};
    for (auto* instance : {&one_, &two}) {
        for (int w = 0; w < kWriters; ++w) {
            writers.emplace_back([instance, &failed] {
                for (int i = 0; i < kReceipts; ++i) {
                    auto reply = instance->executor.run(kStream, std::nullopt, [](Session& s) {
                        auto done = execute<InventoryTraits>(
                            s, kStream, domain::inventory::ReceiveStock{"sku-u", 1},
                            CommandContext{});
                        return ApiResponse{done.rejection ? 409 : 200, {}, false, done.appended};
                    });
                    if (reply.status != 200 || !reply.appended) ++failed;
                }
            });
        }
    }
    for (auto& t : writers) t.join();
    EXPECT_EQ(failed.load(), 0);
    const int kTotal = 2 * kWriters * kReceipts;
    const auto events = one_.store.read_stream(kStream, 1, 10'000);
    ASSERT_EQ(events.size(), static_cast<std::size_t>(kTotal));
    for (std::size_t i = 0; i < events.size(); ++i)
        EXPECT_EQ(events[i].version, static_cast<std::int64_t>(i + 1));
    one_.store.transact([&](Session& s) {
        auto loaded = eventstore::load<InventoryTraits>(s, kStream);
        EXPECT_EQ(loaded.state.available(), kTotal);
    });
    const auto head =
        one_.store.read_head(kStream, eventstore::kSnapshotFormat, 1000, 0, std::nullopt);
    ASSERT_TRUE(head.snapshot);
    EXPECT_EQ(head.snapshot->version, kTotal);
    EXPECT_TRUE(head.events.empty());
}

// Kept folds across processes: a process starts from the fold its last command left, and
// reads only what came after it, the other process's events included; through an unlocked
// attempt and through a locked one (a command with a key) alike.
TEST_F(UnlockedCommands, AKeptFoldIsReadOnWithWhatAnotherProcessWroteSince) {
    Instance two{db_.command_url()};
    const auto receive = [](int quantity) {
        return [quantity](Session& s) {
            auto done = execute<InventoryTraits>(
                s, kStream, domain::inventory::ReceiveStock{"sku-u", quantity}, CommandContext{});
            return ApiResponse{200, {}, false, done.appended};
        };
    };
    const auto load = [](eventstore::Loaded<InventoryTraits>& loaded) {
        return [&loaded](Session& s) {
            loaded = eventstore::load<InventoryTraits>(s, kStream);
            return ApiResponse{};
        };
    };
    one_.executor.run(kStream, std::nullopt, receive(2));
    two.executor.run(kStream, std::nullopt, receive(3));
    two.executor.run(kStream, Dedup{"cmd:k-fold", "receipt"}, receive(4));
    eventstore::Loaded<InventoryTraits> unlocked;
    one_.executor.run(kStream, std::nullopt, load(unlocked));
    EXPECT_EQ(unlocked.version, 3);
    EXPECT_EQ(unlocked.folded, 2);  // the other process's two receipts
    EXPECT_EQ(unlocked.state.on_hand, 9);
    EXPECT_EQ(unlocked.last, one_.store.read_stream(kStream, 3, 1).at(0).checkpoint());
    one_.executor.run(kStream, std::nullopt, receive(1));
    eventstore::Loaded<InventoryTraits> locked;
    two.executor.run(kStream, Dedup{"cmd:k-load", "load"}, load(locked));
    EXPECT_EQ(locked.version, 4);
    EXPECT_EQ(locked.folded, 1);
    EXPECT_EQ(locked.state.on_hand, 10);
}

}  // namespace
}  // namespace ordo::command
