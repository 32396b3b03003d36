// Fault: relay processes killed or NATS restarted mid-publish: JetStream loses nothing and keeps
// no duplicate of what is republished.

#include <gtest/gtest.h>

#include <signal.h>

#include <atomic>
#include <iostream>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using eventstore::EventStore;
using eventstore::ExpectedVersion;
using eventstore::NewEvent;

// A database, a JetStream stream and subject prefix of this test's own, and `ordo serve
// relay` processes pointed at them.
class RelayFaultTest : public ::testing::Test {
   protected:
    RelayFaultTest() {
        auto suffix = platform::new_uuid().substr(0, 8);
        stream_ = "F_" + suffix;
        prefix_ = "f" + suffix + ".events";
    }
    ~RelayFaultTest() override {
        try {
            client_.delete_stream(stream_);
        } catch (const std::exception& e) {
            ADD_FAILURE() << "could not delete stream " << stream_ << ": " << e.what();
        }
    }

    struct RelayProcess {
        RelayProcess(std::uint16_t p, std::vector<std::string> argv,
                     const std::map<std::string, std::string>& env)
            : port{p}, process{std::move(argv), env} {}
        // A sample of the process's /metrics, summed over label sets; nullopt when unreadable.
        std::optional<double> metric(const std::string& name) {
            try {
                HttpClient client{"127.0.0.1", port, 5s};
                auto body = client.get("/metrics").body;
                double sum = 0;
                std::istringstream lines{body};
                for (std::string line; std::getline(lines, line);) {
                    if (line.rfind(name, 0) != 0) continue;
                    auto rest = line.substr(name.size());
                    if (rest.empty() || (rest[0] != ' ' && rest[0] != '{')) continue;
                    sum += std::stod(line.substr(line.rfind(' ') + 1));
                }
                return sum;
            } catch (const std::exception&) {
                return std::nullopt;
            }
        }
        std::uint16_t port;
        Process process;
    };

    std::unique_ptr<RelayProcess> start_relay() {
        auto port = free_port();
        return std::make_unique<RelayProcess>(
            port,
            std::vector<std::string>{ordo_binary(), "serve", "relay", "--address",
                                     "127.0.0.1:" + std::to_string(port), "--stream", stream_,
                                     "--subject-prefix", prefix_, "--partitions", "4"},
            std::map<std::string, std::string>{{"ORDO_RELAY_DATABASE_URL", db_.relay_url()},
                                               {"ORDO_NATS_URL", nats_.url},
                                               {"ORDO_NATS_CA_FILE", nats_.ca_file},
                                               {"ORDO_LOG_LEVEL", "warn"}});
    }

    // Appends `count` events over 16 streams, `per_append` at a time; their ids.
    std::vector<std::string> append(int count, int per_append) {
        std::vector<std::string> ids;
        for (int done = 0; done < count;) {
            std::vector<NewEvent> events;
            for (int i = 0; i < per_append && done < count; ++i, ++done) {
                events.push_back({platform::new_uuid(), "Happened", {{"n", done}}, {}});
                ids.push_back(events.back().event_id);
            }
            store_.append("order-" + std::to_string(next_stream_++ % 16), ExpectedVersion::any(),
                          events);
        }
        return ids;
    }

    // nullopt while the stream is not there or NATS is away.
    std::optional<std::uint64_t> published_count() {
        try {
            return client_.message_count(stream_);
        } catch (const std::exception&) {
            return std::nullopt;
        }
    }

    bool caught_up() {
        pqxx::connection conn{db_.relay_url()};
        pqxx::nontransaction tx{conn};
        auto row = tx.exec1(
            "SELECT (SELECT (transaction_id, global_position) FROM ordo.relay_checkpoint "
            "        WHERE shard = 0) "
            "     = (SELECT (transaction_id, global_position) FROM ordo.events "
            "        ORDER BY transaction_id DESC, global_position DESC LIMIT 1)");
        return !row[0].is_null() && row[0].as<bool>();
    }

    // Events at or below the relay's checkpoint. Only for tests that append from one thread:
    // then positions are dense and in commit order, so the position is the count.
    std::uint64_t covered() {
        if (!probe_) probe_ = std::make_unique<pqxx::connection>(db_.relay_url());
        pqxx::nontransaction tx{*probe_};
        auto rows = tx.exec("SELECT global_position FROM ordo.relay_checkpoint WHERE shard = 0");
        return rows.empty() ? 0 : rows[0][0].as<std::uint64_t>();
    }

    // The stream holds exactly the given events, each once.
    void expect_exactly_once(const std::vector<std::string>& ids) {
        EXPECT_EQ(published_count(), ids.size());
        std::mutex mutex;
        std::multiset<std::string> got;
        auto sub = client_.subscribe_ordered(stream_, prefix_ + ".>", std::nullopt,
                                             [&](platform::jetstream::Message m) {
                                                 std::lock_guard lock{mutex};
                                                 got.insert(m.headers["nats-msg-id"]);
                                             });
        ASSERT_TRUE(eventually([&] {
            std::lock_guard lock{mutex};
            return got.size() >= ids.size();
        }));
        sub.reset();
        std::multiset<std::string> expected(ids.begin(), ids.end());
        EXPECT_EQ(got.size(), expected.size());
        EXPECT_TRUE(got == expected) << "every event once, no other message";
    }

    TestDatabase db_;
    platform::pg::Pool pool_{platform::pg::PoolOptions{
        .url = db_.command_url(), .size = 4, .preparers = {&EventStore::prepare}}};
    EventStore store_{pool_};
    platform::nats::ClientSettings nats_ = nats_admin();
    platform::jetstream::Client client_{nats_, platform::Logger::null_logger()};
    std::string stream_;
    std::string prefix_;
    std::atomic<int> next_stream_{0};
    std::unique_ptr<pqxx::connection> probe_;
};

TEST_F(RelayFaultTest, Sigkill9MidPublishRepublishesOnlyWhatJetStreamAbsorbs) {
    // Kill while JetStream holds messages beyond the relay's checkpoint, so that the restarted
    // relay must publish them again and only the duplicate window keeps them single. Each
    // attempt adds a backlog and kills the relay once it is seen publishing past a checkpoint
    // it has already moved (or has published everything, when the attempt missed).
    std::vector<std::string> ids;
    bool overlapped = false;
    for (int attempt = 0; attempt < 5 && !overlapped; ++attempt) {
        auto backlog = append(10'000, 500);
        ids.insert(ids.end(), backlog.begin(), backlog.end());
        auto relay = start_relay();
        ASSERT_TRUE(eventually(
            [&] {
                auto in_stream = published_count().value_or(0);
                auto below_checkpoint = covered();
                return (below_checkpoint > 0 && in_stream > below_checkpoint) ||
                       in_stream == ids.size();
            },
            120s, 1ms));
        relay->process.signal(SIGKILL);
        ASSERT_TRUE(relay->process.wait(10s));
        auto in_stream = published_count().value_or(0);
        auto below_checkpoint = covered();
        overlapped = below_checkpoint > 0 && in_stream > below_checkpoint;
        std::cout << "killed with " << in_stream << " of " << ids.size()
                  << " events in the stream, " << below_checkpoint << " below the checkpoint\n";
    }
    ASSERT_TRUE(overlapped) << "never killed between a publish and its checkpoint";

    auto second = start_relay();
    ASSERT_TRUE(eventually([&] { return caught_up(); })) << "the restarted relay caught up";
    expect_exactly_once(ids);

    second->process.signal(SIGTERM);
    auto status = second->process.wait(30s);
    ASSERT_TRUE(status) << "the relay did not stop after SIGTERM";
    EXPECT_EQ(*status, 0);
}

// Starts nats-server again if a test stopped it and failed before restarting it.
struct NatsGuard {
    ~NatsGuard() {
        if (stopped) stack("nats-start");
    }
    bool stopped = false;
};

TEST_F(RelayFaultTest, NatsRestartedMidPublishLosesAndDuplicatesNothing) {
    auto relay = start_relay();
    std::atomic<bool> stop_appending{false};
    std::mutex mutex;
    std::vector<std::string> ids;
    auto record = [&](const std::vector<std::string>& batch) {
        std::lock_guard lock{mutex};
        ids.insert(ids.end(), batch.begin(), batch.end());
    };
    auto appended = [&] {
        std::lock_guard lock{mutex};
        return ids.size();
    };
    NatsGuard guard;
    std::jthread appender{[&] {
        while (!stop_appending) record(append(3, 3));
    }};
    // A failed assertion returns early: stop appending first, then restart NATS if needed.
    struct StopOnExit {
        std::atomic<bool>& flag;
        ~StopOnExit() { flag = true; }
    } stop_on_exit{stop_appending};

    ASSERT_TRUE(eventually([&] { return published_count().value_or(0) >= 60; }));
    // A backlog, so that NATS goes away while publishes are in flight.
    auto before = published_count().value_or(0);
    record(append(20'000, 500));
    ASSERT_TRUE(
        eventually([&] { return published_count().value_or(0) > before + 1000; }, 120s, 1ms));
    stack("nats-stop");
    guard.stopped = true;
    auto at_stop = appended();
    EXPECT_TRUE(eventually([&] { return appended() >= at_stop + 150; }))
        << "appends go on while NATS is away";
    stack("nats-start");
    guard.stopped = false;

    auto at_start = appended();
    ASSERT_TRUE(eventually([&] { return published_count().value_or(0) > at_start; }))
        << "the relay reconnected and published what was appended meanwhile";
    ASSERT_TRUE(eventually([&] { return appended() >= at_start + 60; }));
    stop_appending = true;
    appender.join();

    ASSERT_TRUE(eventually([&] { return caught_up(); }));
    expect_exactly_once(ids);
    EXPECT_GE(relay->metric("ordo_nats_reconnects_total").value_or(0), 1);
    std::cout << "publish failures: "
              << relay->metric("ordo_relay_publish_failures_total").value_or(-1) << "\n";
}

}  // namespace
}  // namespace ordo::testing
