// A store sharded over two databases, each on a PostgreSQL cluster of its own (their xids and
// horizons apart, as in production), for the sharding tests: helpers that place streams on a
// shard, and a fixture with the map written and the Command API running.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/events.hpp"
#include "eventstore/shard_catalog.hpp"
#include "platform/core/config.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/shard_map.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {

using namespace std::chrono_literals;

inline constexpr int kPartitions = 4;

inline std::pair<int, std::string> init(const TestDatabase& control, const TestDatabase& second) {
    return write_two_shard_map(control, second, kPartitions);
}

// A stream of `category` whose partition is owned by `shard` under the spread map of two
// shards (partition p on shard p mod 2).
inline std::vector<std::string> skus_on(int shard, int count) {
    std::vector<std::string> skus;
    for (int i = 0; static_cast<int>(skus.size()) < count; ++i) {
        auto sku = "sku-" + std::to_string(i);
        if (platform::partition_of("inventory-" + sku, kPartitions) % 2 == shard) {
            skus.push_back(sku);
        }
    }
    return skus;
}

inline std::int64_t events_of(const TestDatabase& db, const std::string& stream) {
    return scalar(db.admin_url(),
                  "SELECT count(*) FROM ordo.events WHERE stream_id = '" + stream + "'");
}

// The Command API on the control database of a two-shard map, and a relay per shard.
class ShardedStack : public ::testing::Test {
   protected:
    ShardedStack() {
        auto [rc, out] = init(control_, second_);
        EXPECT_EQ(rc, 0) << out;
        env_ = spawned_service_env(control_);
        env_["ORDO_PARTITIONS"] = std::to_string(kPartitions);
        env_["ORDO_API_TOKENS_FILE"] = "";
        env_["ORDO_LOG_LEVEL"] = "warn";
        // A JetStream stream of this test's own: no other test's relay reaches its services.
        env_["ORDO_NATS_STREAM"] = stream_;
        env_["ORDO_NATS_SUBJECT_PREFIX"] = prefix_;
        command_ = serve({"command", "--insecure-no-auth"}, env_, port_);
        auto commands = client();
        EXPECT_TRUE(eventually([&] { return healthy(commands); }));
    }

    // `ordo serve <arguments> --address 127.0.0.1:<port>` on `env`.
    static std::unique_ptr<Process> serve(std::vector<std::string> arguments,
                                          const std::map<std::string, std::string>& env,
                                          std::uint16_t port = free_port()) {
        arguments.insert(arguments.begin(), {ordo_binary(), "serve"});
        arguments.insert(arguments.end(), {"--address", "127.0.0.1:" + std::to_string(port)});
        return std::make_unique<Process>(std::move(arguments), env);
    }

    static bool healthy(HttpClient& service) {
        try {
            return service.get("/healthz").status == 200;
        } catch (const std::exception&) {
            service.close();
            return false;
        }
    }

    HttpClient client() { return HttpClient{"127.0.0.1", port_, 10s}; }

    // Every checkpoint of the read models at the head of the shard its position is in (the
    // one it names, else its partition's under the spread map), and no committed event
    // hidden above a shard's horizon: the projector has applied everything, and a rebuild
    // can be compared with what it built.
    bool read_models_at_heads() const {
        for (const auto* db : {&control_, &second_}) {
            if (scalar(db->admin_url(),
                       "SELECT count(*) FROM ordo.events WHERE transaction_id >= "
                       "pg_snapshot_xmin(pg_current_snapshot())") != 0)
                return false;
        }
        auto head_of = [](const TestDatabase& db) {
            pqxx::connection conn{db.admin_url()};
            pqxx::read_transaction txn{conn};
            auto rows = txn.exec(
                "SELECT transaction_id::text, global_position FROM ordo.events WHERE "
                "transaction_id < pg_snapshot_xmin(pg_current_snapshot()) "
                "ORDER BY transaction_id DESC, global_position DESC LIMIT 1");
            return rows.empty() ? eventstore::Checkpoint{}
                                : eventstore::Checkpoint{std::stoull(rows[0][0].c_str()),
                                                         rows[0][1].as<std::int64_t>()};
        };
        const eventstore::Checkpoint heads[] = {head_of(control_), head_of(second_)};
        pqxx::connection conn{control_.admin_url()};
        pqxx::read_transaction txn{conn};
        int at_head = 0;
        for (const auto& row : txn.exec(
                 "SELECT coalesce(shard, partition % 2), transaction_id::text, global_position "
                 "FROM ordo.projection_checkpoints WHERE projection IN ('orders', 'inventory', "
                 "'accounts', 'traces', 'sagas')")) {
            const eventstore::Checkpoint at{std::stoull(row[1].c_str()), row[2].as<std::int64_t>()};
            if (at >= heads[row[0].as<int>()]) ++at_head;
        }
        return at_head == 5 * kPartitions;
    }

    // The map in force, as the control database has it.
    eventstore::ShardMap map_now() const {
        pqxx::connection conn{control_.admin_url()};
        pqxx::work txn{conn};
        return eventstore::shard_map_for(txn, kPartitions);
    }

    // `ordo shards <arguments>` on this store: its exit status, then its output and log.
    std::pair<int, std::string> shards(std::vector<std::string> arguments) const {
        arguments.insert(arguments.begin(), {"shards", "--database-url", control_.migrator_url(),
                                             "--partitions", std::to_string(kPartitions)});
        return ordo(arguments, true);
    }

    // `third` registered as shard 2, and partition 0 moved to it (the test has written no
    // event in it yet: the move waits for no relay).
    void give_partition_0_to(const TestDatabase& third) const {
        auto [added, added_out] = shards({"add", "--shard", "2=" + location(third)});
        ASSERT_EQ(added, 0) << added_out;
        auto [moved, moved_out] = shards({"move", "--partition", "0", "--to", "2"});
        ASSERT_EQ(moved, 0) << moved_out;
    }

    // A sku whose inventory stream is in partition 0, named `prefix` and a number.
    static std::string sku_in_partition_0(const std::string& prefix) {
        for (int i = 0;; ++i) {
            auto sku = prefix + std::to_string(i);
            if (platform::partition_of("inventory-" + sku, kPartitions) == 0) return sku;
        }
    }

    HttpResponse receive(const std::string& sku, const std::string& key) {
        return client().post_json("/v1/inventory/" + sku + "/receipts", {{"quantity", 2}},
                                  {{"Idempotency-Key", key}});
    }

    // Shard 1's database refuses new sessions of the service roles and loses those it had,
    // as when its cluster is down; then comes back.
    void take_down_second(bool down) {
        pqxx::connection admin{platform::with_database(second_.admin_url(), "postgres")};
        pqxx::nontransaction tx{admin};
        tx.exec("ALTER DATABASE " + tx.quote_name(second_.name()) + " CONNECTION LIMIT " +
                (down ? "0" : "-1"));
        if (down) {
            tx.exec_params(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                second_.name());
        }
    }

    const std::string suffix_ = platform::new_uuid().substr(0, 8);
    const std::string stream_ = "T_" + suffix_;
    const std::string prefix_ = "t" + suffix_ + ".events";
    TestDatabase control_;
    TestDatabase second_{false, 1};
    std::map<std::string, std::string> env_;
    std::uint16_t port_ = free_port();
    std::unique_ptr<Process> command_;
};

}  // namespace ordo::testing
