// `ordo serve command|query` as real processes: token files, `ordo token new`, limits.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/topology.hpp"
#include "platform/core/errors.hpp"

#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

// A private folder for one test's files, removed afterwards.
class PrivateDir {
   public:
    PrivateDir() {
        std::string pattern = (fs::temp_directory_path() / "ordo-tokens-XXXXXX").string();
        if (!::mkdtemp(pattern.data())) throw std::runtime_error("mkdtemp failed");
        path_ = pattern;
    }
    ~PrivateDir() {
        std::error_code ignored;
        fs::remove_all(path_, ignored);
    }
    fs::path operator/(const std::string& name) const { return path_ / name; }

   private:
    fs::path path_;
};

void write_file(const fs::path& path, const std::string& text, mode_t mode = 0600) {
    std::ofstream{path, std::ios::trunc} << text;
    ::chmod(path.c_str(), mode);
}

std::string read_file(const fs::path& path) {
    std::ifstream in{path};
    std::stringstream text;
    text << in.rdbuf();
    return text.str();
}

struct Issued {
    std::string token;
    std::string line;
};

// `ordo token new NAME --scopes SCOPES`, its output read back.
Issued issue(const PrivateDir& dir, const std::string& name, const std::string& scopes) {
    const auto out = dir / ("issued-" + name);
    Process p{{"/bin/sh", "-c", "\"$0\" token new \"$1\" --scopes \"$2\" > \"$3\"", ordo_binary(),
               name, scopes, out.string()}};
    EXPECT_EQ(p.wait(30s), 0);
    std::istringstream lines{read_file(out)};
    Issued issued;
    std::string line;
    while (std::getline(lines, line)) {
        if (line.rfind("token: ", 0) == 0) issued.token = line.substr(7);
        if (line.rfind("line:  ", 0) == 0) issued.line = line.substr(7);
    }
    EXPECT_FALSE(issued.token.empty());
    EXPECT_FALSE(issued.line.empty());
    return issued;
}

std::map<std::string, std::string> service_env(TestDatabase& db) {
    auto env = spawned_service_env(db);
    env.merge(std::map<std::string, std::string>{{"ORDO_PARTITIONS", "4"},
                                                 {"ORDO_API_TOKENS", ""},
                                                 {"ORDO_API_TOKENS_FILE", ""},
                                                 {"ORDO_LOG_LEVEL", "warn"}});
    return env;
}

bool healthy(std::uint16_t port) {
    try {
        HttpClient client{"127.0.0.1", port, 2s};
        return client.get("/healthz").status == 200;
    } catch (const std::exception&) {
        return false;
    }
}

TEST(ServeTokens, AServiceRefusesToStartWithoutTokensOrOpenBeyondLoopback) {
    TestDatabase db;
    PrivateDir dir;
    const auto good = dir / "good";
    write_file(good, issue(dir, "loader", "commands").line + "\n");
    const auto shared = dir / "shared";
    write_file(shared, read_file(good), 0666);
    const auto raw = dir / "raw";
    write_file(raw, "loader commands my-secret-token\n");
    const auto empty = dir / "empty";
    write_file(empty, "# nobody yet\n");
    const auto foreign = dir / "foreign";
    write_file(foreign, read_file(good), 0644);
    // Only root can give a file away; as anyone else that case is not checked here.
    const bool as_root = ::geteuid() == 0;
    if (as_root) {
        ASSERT_EQ(::chown(foreign.c_str(), 65534, 65534), 0);  // nobody's
    }

    struct Case {
        std::string why;
        std::vector<std::string> args;
        std::map<std::string, std::string> env;
    };
    for (const char* service : {"command", "query"}) {
        const std::string loopback = "127.0.0.1:" + std::to_string(free_port());
        for (const auto& c : std::vector<Case>{
                 {"no tokens", {"--address", loopback}, {}},
                 {"open beyond loopback", {"--insecure-no-auth", "--address", "0.0.0.0:1"}, {}},
                 {"the old raw list", {"--address", loopback}, {{"ORDO_API_TOKENS", "secret"}}},
                 {"a file others may write",
                  {"--address", loopback},
                  {{"ORDO_API_TOKENS_FILE", shared.string()}}},
                 {"a raw token in the file",
                  {"--address", loopback},
                  {{"ORDO_API_TOKENS_FILE", raw.string()}}},
                 {"a file without tokens",
                  {"--address", loopback},
                  {{"ORDO_API_TOKENS_FILE", empty.string()}}},
                 {"another user's file",
                  {"--address", loopback},
                  {{"ORDO_API_TOKENS_FILE", as_root ? foreign.string() : shared.string()}}},
                 {"a missing file",
                  {"--address", loopback},
                  {{"ORDO_API_TOKENS_FILE", (dir / "missing").string()}}}}) {
            SCOPED_TRACE(std::string(service) + ": " + c.why);
            auto env = service_env(db);
            for (const auto& [k, v] : c.env) env[k] = v;
            std::vector<std::string> argv{ordo_binary(), "serve", service};
            argv.insert(argv.end(), c.args.begin(), c.args.end());
            Process p{argv, env};
            EXPECT_EQ(p.wait(60s), 2);
        }
    }
}

TEST(ServeTokens, AnIssuedTokenIsAdmittedAndRotatedWithAHangUp) {
    TestDatabase db;
    PrivateDir dir;
    const Issued first = issue(dir, "loader", "commands");
    const Issued second = issue(dir, "loader", "commands");
    const Issued reader = issue(dir, "dashboard", "read");
    const auto file = dir / "tokens";
    write_file(file, first.line + "\n" + reader.line + "\n");

    const auto port = free_port();
    auto env = service_env(db);
    env["ORDO_API_TOKENS_FILE"] = file.string();
    Process service{
        {ordo_binary(), "serve", "command", "--address", "127.0.0.1:" + std::to_string(port)}, env};
    ASSERT_TRUE(eventually([&] { return healthy(port); }, 60s));

    HttpClient client{"127.0.0.1", port};
    auto receive = [&](const std::string& token) {
        return client
            .post_json("/v1/inventory/sku-1/receipts", {{"quantity", 1}},
                       {{"Authorization", "Bearer " + token}})
            .status;
    };
    // Admitted or not, without appending anything: an invalid body is 422 past the check.
    auto admitted = [&](const std::string& token) {
        return client
                   .post_json("/v1/inventory/sku-1/receipts", {{"quantity", 0}},
                              {{"Authorization", "Bearer " + token}})
                   .status == 422;
    };
    EXPECT_EQ(receive(first.token), 200);
    EXPECT_EQ(receive(second.token), 401);
    EXPECT_EQ(receive(reader.token), 403);

    // Rotation as documented: the new token's line joins the old one's under the same name,
    // a hang-up loads the file and both work; then the old line goes, and another hang-up.
    write_file(file, first.line + "\n" + second.line + "\n" + reader.line + "\n");
    service.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return admitted(second.token); }, 30s));
    EXPECT_EQ(receive(second.token), 200);
    EXPECT_EQ(receive(first.token), 200);
    write_file(file, second.line + "\n" + reader.line + "\n");
    service.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return !admitted(first.token); }, 30s));
    EXPECT_EQ(receive(first.token), 401);
    EXPECT_EQ(receive(second.token), 200);
    // Both tokens were one caller: every event names "loader".
    EXPECT_EQ(scalar(db.migrator_url(),
                     "SELECT count(*) FROM ordo.events WHERE metadata->>'actor' <> 'loader'"),
              0);

    // A file that no longer loads leaves the tokens in force as they were.
    const Issued probe = issue(dir, "probe", "commands");
    write_file(file, probe.line + "\nloader commands not-a-hash\n");
    service.signal(SIGHUP);
    ASSERT_TRUE(eventually(
        [&] {
            return client.get("/metrics")
                       .body.find("ordo_api_token_reloads_total{outcome=\"failed\"} 1") !=
                   std::string::npos;
        },
        30s));
    EXPECT_EQ(receive(second.token), 200);
    EXPECT_EQ(receive(probe.token), 401);
    // Nor does an empty file switch authentication off.
    write_file(file, "# everyone revoked by mistake\n");
    service.signal(SIGHUP);
    ASSERT_TRUE(eventually(
        [&] {
            return client.get("/metrics")
                       .body.find("ordo_api_token_reloads_total{outcome=\"failed\"} 2") !=
                   std::string::npos;
        },
        30s));
    EXPECT_EQ(client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 1}}).status, 401);
    EXPECT_EQ(receive(second.token), 200);
    EXPECT_EQ(service.wait(0ms), std::nullopt);  // and the service is still running

    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM ordo.events"), 6);  // the 200s
}

TEST(ServeTokens, TheMovedAdminRoutesPointOnlyWhereItIsSafe) {
    TestDatabase db;
    PrivateDir dir;
    const Issued admin = issue(dir, "operator", "admin");
    const auto file = dir / "tokens";
    write_file(file, admin.line + "\n");
    auto env = service_env(db);
    env["ORDO_API_TOKENS_FILE"] = file.string();
    const auto at = [](std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); };
    // A plain-http Command URL beyond loopback would send admin tokens in the clear.
    for (const char* url : {"http://10.0.0.7:8080", "ftp://x", "http://localhost:8080",
                            "http://127.0.0.1:8080@evil.example/", "http://127.0.0.1.evil.example/",
                            "https://user@evil.example"}) {
        SCOPED_TRACE(url);
        auto bad = env;
        bad["ORDO_COMMAND_URL"] = url;
        Process p{{ordo_binary(), "serve", "query", "--address", at(free_port())}, bad};
        EXPECT_EQ(p.wait(60s), 2);
    }
    // Without one, the old route names the new one (410); with one, it redirects (308).
    for (const std::string url : {"", "https://orders.example.com/"}) {
        SCOPED_TRACE(url);
        auto with = env;
        with["ORDO_COMMAND_URL"] = url;
        const auto port = free_port();
        Process query{{ordo_binary(), "serve", "query", "--address", at(port)}, with};
        ASSERT_TRUE(eventually([&] { return healthy(port); }, 60s));
        HttpClient client{"127.0.0.1", port};
        auto res = client.request("POST", "/v1/admin/dead-letters/3/retry", "",
                                  {{"Authorization", "Bearer " + admin.token}});
        if (url.empty()) {
            EXPECT_EQ(res.status, 410) << res.body;
            EXPECT_NE(res.body.find("/v1/admin/dead-letters/3/retry"), std::string::npos);
        } else {
            EXPECT_EQ(res.status, 308) << res.body;
            EXPECT_EQ(res.header("location"),
                      "https://orders.example.com/v1/admin/dead-letters/3/retry");
        }
        EXPECT_EQ(client.request("POST", "/v1/admin/dead-letters/3/retry").status, 401);
    }
}

TEST(ServeTokens, TokenNewRefusesBadNamesAndScopes) {
    for (const auto& args : std::vector<std::vector<std::string>>{{"bad name", "--scopes", "read"},
                                                                  {"ok", "--scopes", "write"},
                                                                  {"ok", "--scopes", ""},
                                                                  {"ok"}}) {
        std::vector<std::string> argv{ordo_binary(), "token", "new"};
        argv.insert(argv.end(), args.begin(), args.end());
        Process p{argv};
        EXPECT_NE(p.wait(30s), 0) << args[0];
    }
}

// The "Max open files" soft and hard limits of a running process.
std::optional<std::pair<long, long>> open_file_limits(pid_t pid) {
    std::istringstream limits{read_file("/proc/" + std::to_string(pid) + "/limits")};
    std::string line;
    while (std::getline(limits, line)) {
        if (line.rfind("Max open files", 0) != 0) continue;
        std::istringstream fields{line.substr(14)};
        long soft = 0, hard = 0;
        if (fields >> soft >> hard) return std::pair{soft, hard};
    }
    return std::nullopt;
}

TEST(ServeLimits, TheOpenFileLimitIsRaisedToWhatTheConnectionCapNeeds) {
    TestDatabase db;
    const auto port = free_port();
    // Started with a soft limit far below the cap of 1024 connections.
    Process service{
        {"/bin/bash", "-c", "ulimit -Sn 256 && exec \"$0\" \"$@\"", ordo_binary(), "serve",
         "command", "--insecure-no-auth", "--address", "127.0.0.1:" + std::to_string(port)},
        service_env(db)};
    ASSERT_TRUE(eventually([&] { return healthy(port); }, 60s));
    auto limits = open_file_limits(service.pid());
    ASSERT_TRUE(limits);
    EXPECT_GE(limits->first, std::min(1024L + 512L, limits->second));
    EXPECT_GT(limits->first, 256);
}

TEST(ServeLimits, ThePerClientConnectionCapIsASetting) {
    TestDatabase db;
    const auto port = free_port();
    auto env = service_env(db);
    env["ORDO_MAX_CONNECTIONS_PER_CLIENT"] = "2";
    Process service{{ordo_binary(), "serve", "command", "--insecure-no-auth", "--address",
                     "127.0.0.1:" + std::to_string(port)},
                    env};
    ASSERT_TRUE(eventually([&] { return healthy(port); }, 60s));
    // Two kept-alive connections from this address use the cap up. The server may not yet
    // have seen the health probe's connection close, so each is admitted once it has.
    const auto admitted = [&](HttpClient& client) {
        return eventually(
            [&] {
                client.close();
                try {
                    return client.get("/healthz").status == 200;
                } catch (const std::exception&) {
                    return false;
                }
            },
            30s);
    };
    HttpClient first{"127.0.0.1", port};
    HttpClient second{"127.0.0.1", port};
    ASSERT_TRUE(admitted(first));
    ASSERT_TRUE(admitted(second));
    auto refused = HttpClient{"127.0.0.1", port}.get("/healthz");
    EXPECT_EQ(refused.status, 503);
    EXPECT_NE(refused.body.find("too many connections from this address"), std::string::npos);
    // One closes: a new connection is admitted again.
    first.close();
    EXPECT_TRUE(eventually(
        [&] {
            try {
                return HttpClient{"127.0.0.1", port}.get("/healthz").status == 200;
            } catch (const std::exception&) {
                return false;
            }
        },
        30s));
    // A bad value is refused at start, naming the setting.
    auto bad = env;
    bad["ORDO_MAX_CONNECTIONS_PER_CLIENT"] = "0";
    Process refused_start{{"/bin/sh", "-c",
                           "\"$0\" serve command --insecure-no-auth --address \"$1\" 2>&1 | "
                           "grep -q -- --max-connections-per-client",
                           ordo_binary(), "127.0.0.1:" + std::to_string(free_port())},
                          bad};
    EXPECT_EQ(refused_start.wait(30s), 0);  // it ended, and its message named the setting
}

// The partition count is recorded by the first long-running writer of a database; every
// other count is refused, by the store functions and by each service that works per
// partition. Readers only compare: they never record.
TEST(ServePartitions, EveryServiceKeepsToThePartitionCountItsDatabaseRecorded) {
    TestDatabase db;
    {
        // Nothing recorded yet: a reader goes on, and records nothing.
        pqxx::connection query{db.query_url()};
        pqxx::work txn{query};
        eventstore::check_partition_count(txn, 8);
        txn.commit();
    }
    {
        pqxx::connection relay{db.relay_url()};
        pqxx::work txn{relay};
        EXPECT_THROW(eventstore::claim_partition_count(txn, 0), platform::InvalidInput);
        eventstore::claim_partition_count(txn, 4);  // the first: recorded
        eventstore::claim_partition_count(txn, 4);  // the same again: agreed
        txn.commit();
    }
    {
        pqxx::connection sagas{db.sagas_url()};
        pqxx::work txn{sagas};
        try {
            eventstore::claim_partition_count(txn, 8);
            ADD_FAILURE() << "another count was accepted";
        } catch (const eventstore::PartitionCountMismatch& e) {
            EXPECT_EQ(e.recorded(), 4);
        }
    }
    {
        pqxx::connection query{db.query_url()};
        pqxx::work txn{query};
        eventstore::check_partition_count(txn, 4);
        EXPECT_THROW(eventstore::check_partition_count(txn, 8), eventstore::PartitionCountMismatch);
    }
    auto env = service_env(db);
    env["ORDO_PARTITIONS"] = "8";
    for (const std::string service : {"projector", "query", "sagas", "relay"}) {
        // Each ends at once, saying why; grep's status is the pipe's.
        Process refused{{"/bin/sh", "-c",
                         "\"$0\" serve \"$1\" --address \"$2\" $3 2>&1 | "
                         "grep -q 'partitioned 4 ways'",
                         ordo_binary(), service, "127.0.0.1:" + std::to_string(free_port()),
                         service == "query" ? "--insecure-no-auth" : ""},
                        env};
        EXPECT_EQ(refused.wait(60s), 0) << service;
    }
    // With the recorded count a service runs.
    const auto port = free_port();
    env["ORDO_PARTITIONS"] = "4";
    Process agreed{
        {ordo_binary(), "serve", "projector", "--address", "127.0.0.1:" + std::to_string(port)},
        env};
    EXPECT_TRUE(eventually([&] { return healthy(port); }, 60s));
    EXPECT_FALSE(agreed.wait(2s)) << "the projector ended";
}

// A service given no count takes the one its database recorded, so a store keeps the count
// it was deployed with whatever a later release's default; on a new store it records the
// default.
TEST(ServePartitions, AServiceGivenNoCountTakesTheRecordedOneOrRecordsTheDefault) {
    TestDatabase db;
    {
        pqxx::connection relay{db.relay_url()};
        pqxx::work txn{relay};
        eventstore::claim_partition_count(txn, 4);
        txn.commit();
    }
    auto env = service_env(db);
    env.erase("ORDO_PARTITIONS");
    env["ORDO_LOG_LEVEL"] = "info";
    const auto log = std::filesystem::temp_directory_path() /
                     ("ordo-adopt-" + std::to_string(::getpid()) + ".log");
    Process adopted{{"/bin/sh", "-c", "exec \"$0\" serve projector --address \"$1\" 2> \"$2\"",
                     ordo_binary(), "127.0.0.1:" + std::to_string(free_port()), log.string()},
                    env};
    auto says_running = [&] {
        std::ifstream in{log};
        for (std::string line; std::getline(in, line);) {
            if (line.find("projector running") == std::string::npos) continue;
            return nlohmann::json::parse(line).value("partitions", 0);
        }
        return 0;
    };
    EXPECT_TRUE(eventually([&] { return says_running() != 0; }, 60s));
    EXPECT_EQ(says_running(), 4);
    std::filesystem::remove(log);

    // A new store: the first service to start records the default.
    TestDatabase fresh;
    auto fresh_env = service_env(fresh);
    fresh_env.erase("ORDO_PARTITIONS");
    Process first{
        {ordo_binary(), "serve", "relay", "--address", "127.0.0.1:" + std::to_string(free_port())},
        fresh_env};
    auto recorded = [&] {
        pqxx::connection query{fresh.query_url()};
        pqxx::work txn{query};
        return eventstore::recorded_partition_count(txn);
    };
    EXPECT_TRUE(eventually([&] { return recorded().has_value(); }, 60s));
    EXPECT_EQ(recorded(), eventstore::kDefaultPartitions);
}

}  // namespace
}  // namespace ordo::testing
