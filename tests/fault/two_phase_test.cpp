// `ordo 2pc-recover` against real prepared transactions: orphans resolved by the rule, an
// unreachable participant left to an operator, resolution by hand, unsafe gids refused.

#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "app/two_phase.hpp"
#include "platform/core/config.hpp"
#include "platform/core/trace.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
namespace tp = app::two_phase;

std::string new_global_id() {
    auto id = platform::new_uuid();
    id.erase(std::remove(id.begin(), id.end(), '-'), id.end());
    return id;
}

// Prepared transactions outlive their sessions and keep DROP DATABASE out; whatever a
// failing test leaves behind in its databases is rolled back before they are dropped.
class PreparedLeftovers {
   public:
    explicit PreparedLeftovers(std::vector<const TestDatabase*> databases)
        : databases_{std::move(databases)} {}
    ~PreparedLeftovers() {
        try {
            for (const auto& p : tp::list_prepared(stack_setting("ORDO_PG_ADMIN_URL"))) {
                for (const auto* db : databases_) {
                    if (p.database != db->name()) continue;
                    pqxx::connection conn{db->admin_url()};
                    pqxx::nontransaction txn{conn};
                    txn.exec("ROLLBACK PREPARED " + txn.quote(p.gid));
                }
            }
        } catch (const std::exception& e) {
            ADD_FAILURE() << "could not roll back leftover prepared transactions: " << e.what();
        }
    }

   private:
    std::vector<const TestDatabase*> databases_;
};

// What `ordo 2pc-recover` printed (--json) and its exit status.
struct Recovery {
    int status = -1;
    std::vector<nlohmann::json> rows;

    const nlohmann::json* row(const std::string& gid) const {
        for (const auto& r : rows) {
            if (r.at("gid") == gid) return &r;
        }
        return nullptr;
    }
};

// Two participant databases as a coordinator of bench/two_phase would use them: stock in
// one, accounts in the other, and the commit markers the recovery rule reads.
class TwoPhaseRecovery : public ::testing::Test {
   protected:
    TestDatabase inventory_{false};
    TestDatabase payments_{false};
    PreparedLeftovers leftovers_{{&inventory_, &payments_}};

    void SetUp() override {
        const std::string markers =
            "CREATE TABLE " + std::string{tp::kCommittedTable} + " (gid text PRIMARY KEY)";
        {
            pqxx::connection conn{inventory_.admin_url()};
            pqxx::work txn{conn};
            txn.exec("CREATE TABLE stock (sku text PRIMARY KEY, available bigint NOT NULL)");
            txn.exec("INSERT INTO stock VALUES ('sku-a', 10), ('sku-b', 10), ('sku-c', 10)");
            txn.exec(markers);
            txn.commit();
        }
        pqxx::connection conn{payments_.admin_url()};
        pqxx::work txn{conn};
        txn.exec("CREATE TABLE accounts (account text PRIMARY KEY, available bigint NOT NULL)");
        txn.exec("INSERT INTO accounts VALUES ('acct-a', 100), ('acct-b', 100), ('acct-c', 100)");
        txn.exec(markers);
        txn.commit();
    }

    std::string gid(const std::string& global_id, std::size_t participant,
                    std::vector<std::string> databases = {}) const {
        if (databases.empty()) databases = {inventory_.name(), payments_.name()};
        return tp::format_gid({global_id, participant, std::move(databases)});
    }

    // A participant's work up to PREPARE TRANSACTION; then its coordinator vanishes (the
    // session ends, the prepared transaction and its row locks stay).
    static void prepare(const std::string& url, const std::string& update, const std::string& id,
                        const std::string& gid) {
        pqxx::connection conn{url};
        pqxx::nontransaction txn{conn};
        txn.exec("BEGIN");
        ASSERT_EQ(txn.exec_params(update, id).affected_rows(), 1u);
        txn.exec_params("INSERT INTO " + std::string{tp::kCommittedTable} + " VALUES ($1)", gid);
        txn.exec("PREPARE TRANSACTION " + txn.quote(gid));
    }

    static void commit_prepared(const std::string& url, const std::string& gid) {
        pqxx::connection conn{url};
        pqxx::nontransaction txn{conn};
        txn.exec("COMMIT PREPARED " + txn.quote(gid));
    }

    void reserve(const std::string& sku, const std::string& gid) {
        prepare(inventory_.admin_url(), "UPDATE stock SET available = available - 1 WHERE sku = $1",
                sku, gid);
    }
    void authorize(const std::string& account, const std::string& gid) {
        prepare(payments_.admin_url(),
                "UPDATE accounts SET available = available - 30 WHERE account = $1", account, gid);
    }

    std::int64_t stock(const std::string& sku) const {
        pqxx::connection conn{inventory_.admin_url()};
        pqxx::read_transaction txn{conn};
        return txn.exec_params1("SELECT available FROM stock WHERE sku = $1", sku)[0]
            .as<std::int64_t>();
    }
    std::int64_t funds(const std::string& account) const {
        pqxx::connection conn{payments_.admin_url()};
        pqxx::read_transaction txn{conn};
        return txn.exec_params1("SELECT available FROM accounts WHERE account = $1", account)[0]
            .as<std::int64_t>();
    }

    // Whether the row can be locked at once: false while a prepared transaction holds it.
    static bool lockable(const std::string& url, const std::string& table, const std::string& key,
                         const std::string& id) {
        pqxx::connection conn{url};
        pqxx::work txn{conn};
        try {
            txn.exec_params("SELECT 1 FROM " + txn.quote_name(table) + " WHERE " +
                                txn.quote_name(key) + " = $1 FOR UPDATE NOWAIT",
                            id);
            return true;
        } catch (const pqxx::sql_error&) {
            return false;  // lock_not_available
        }
    }
    bool sku_lockable(const std::string& sku) const {
        return lockable(inventory_.admin_url(), "stock", "sku", sku);
    }
    bool account_lockable(const std::string& account) const {
        return lockable(payments_.admin_url(), "accounts", "account", account);
    }

    static bool is_prepared(const std::string& gid) {
        auto all = tp::list_prepared(stack_setting("ORDO_PG_ADMIN_URL"));
        return std::any_of(all.begin(), all.end(),
                           [&](const tp::PreparedTransaction& p) { return p.gid == gid; });
    }

    // xids as 64-bit numbers; a fresh test cluster is in its first xid epoch.
    static std::int64_t prepared_xid(const std::string& gid) {
        pqxx::connection conn{stack_setting("ORDO_PG_ADMIN_URL")};
        pqxx::read_transaction txn{conn};
        return txn
            .exec_params1("SELECT transaction::text::bigint FROM pg_prepared_xacts WHERE gid = $1",
                          gid)[0]
            .as<std::int64_t>();
    }
    static std::int64_t horizon() {
        pqxx::connection conn{stack_setting("ORDO_PG_ADMIN_URL")};
        pqxx::read_transaction txn{conn};
        return txn.exec1("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")[0]
            .as<std::int64_t>();
    }

    static Recovery recover(const std::vector<std::string>& args) {
        auto out = std::filesystem::temp_directory_path() /
                   ("ordo-2pc-recover-" + platform::new_uuid() + ".out");
        // The shell only redirects; the arguments reach ordo untouched.
        std::vector<std::string> argv{"/bin/sh", "-c", R"(exec "$0" 2pc-recover "$@" >"$OUT")",
                                      ordo_binary()};
        argv.insert(argv.end(), args.begin(), args.end());
        Process p{argv,
                  {{"ORDO_PG_ADMIN_URL", stack_setting("ORDO_PG_ADMIN_URL")},
                   {"OUT", out.string()},
                   {"ORDO_LOG_LEVEL", "error"}}};
        Recovery recovery;
        recovery.status = p.wait(2min).value_or(-1);
        std::ifstream in{out};
        for (std::string line; std::getline(in, line);) {
            if (!line.empty()) recovery.rows.push_back(nlohmann::json::parse(line));
        }
        std::filesystem::remove(out);
        return recovery;
    }
};

TEST_F(TwoPhaseRecovery, ResolvesOrphansByTheRuleAndReleasesTheirLocks) {
    // A: both participants prepared, the payments one committed, then the coordinator died.
    const auto a = new_global_id();
    reserve("sku-a", gid(a, 0));
    authorize("acct-a", gid(a, 1));
    commit_prepared(payments_.admin_url(), gid(a, 1));
    // B: the inventory participant prepared; the coordinator died before payments prepared.
    const auto b = new_global_id();
    reserve("sku-b", gid(b, 0));
    {
        pqxx::connection conn{payments_.admin_url()};
        pqxx::nontransaction txn{conn};
        txn.exec("BEGIN");
        txn.exec("UPDATE accounts SET available = available - 30 WHERE account = 'acct-b'");
    }
    ASSERT_FALSE(sku_lockable("sku-a"));
    ASSERT_FALSE(sku_lockable("sku-b"));
    ASSERT_TRUE(sku_lockable("sku-c"));
    // A prepared transaction counts as running in every snapshot of the cluster, so it holds
    // back the xid horizon below which the event store's readers (relay, projections) read.
    const auto orphan_xid = prepared_xid(gid(b, 0));
    EXPECT_LE(horizon(), orphan_xid);

    // Listing decides but changes nothing; a threshold the orphans are younger than neither.
    for (const auto& args : std::vector<std::vector<std::string>>{
             {"--json"}, {"--json", "--resolve-older-than", "3600"}}) {
        auto listed = recover(args);
        EXPECT_EQ(listed.status, 0);
        ASSERT_TRUE(listed.row(gid(a, 0))) << "not listed: " << gid(a, 0);
        ASSERT_TRUE(listed.row(gid(b, 0))) << "not listed: " << gid(b, 0);
        EXPECT_EQ(listed.row(gid(a, 0))->at("decision"), "commit");
        EXPECT_EQ(listed.row(gid(b, 0))->at("decision"), "rollback");
        EXPECT_EQ(listed.row(gid(a, 0))->at("database"), inventory_.name());
        EXPECT_EQ(listed.row(gid(a, 0))->at("owner"), "postgres");
        EXPECT_GE(listed.row(gid(a, 0))->at("age_seconds").get<double>(), 0.0);
        EXPECT_FALSE(listed.row(gid(a, 1)));
        EXPECT_TRUE(is_prepared(gid(a, 0)));
        EXPECT_TRUE(is_prepared(gid(b, 0)));
    }

    auto resolved = recover({"--json", "--resolve-older-than", "0"});
    EXPECT_EQ(resolved.status, 0);
    ASSERT_TRUE(resolved.row(gid(a, 0)));
    ASSERT_TRUE(resolved.row(gid(b, 0)));
    EXPECT_EQ(resolved.row(gid(a, 0))->at("outcome"), "committed");
    EXPECT_EQ(resolved.row(gid(b, 0))->at("outcome"), "rolled back");
    EXPECT_FALSE(is_prepared(gid(a, 0)));
    EXPECT_FALSE(is_prepared(gid(b, 0)));
    // A took effect in both databases, B in neither; the rows are free again.
    EXPECT_EQ(stock("sku-a"), 9);
    EXPECT_EQ(funds("acct-a"), 70);
    EXPECT_EQ(stock("sku-b"), 10);
    EXPECT_EQ(funds("acct-b"), 100);
    EXPECT_TRUE(sku_lockable("sku-a"));
    EXPECT_TRUE(sku_lockable("sku-b"));
    EXPECT_TRUE(account_lockable("acct-a"));
    EXPECT_TRUE(eventually([&] { return horizon() > orphan_xid; }));
    // The abandoned payments transaction ends when the server notices its session is gone.
    EXPECT_TRUE(eventually([&] { return account_lockable("acct-b"); }));
}

TEST_F(TwoPhaseRecovery, LeavesAGlobalTransactionWithAnUnreachableParticipantToAnOperator) {
    const auto c = new_global_id();
    const auto orphan = gid(c, 0, {inventory_.name(), "ordo_no_such_database"});
    reserve("sku-c", orphan);

    auto resolved = recover({"--json", "--resolve-older-than", "0"});
    EXPECT_EQ(resolved.status, 1) << "an undecided transaction is a failure to report";
    ASSERT_TRUE(resolved.row(orphan));
    EXPECT_EQ(resolved.row(orphan)->at("decision"), "undecided");
    EXPECT_EQ(resolved.row(orphan)->at("outcome"), "left: undecided");
    EXPECT_TRUE(is_prepared(orphan));
    EXPECT_FALSE(sku_lockable("sku-c"));

    auto by_hand = recover({"--json", "--rollback", orphan});
    EXPECT_EQ(by_hand.status, 0);
    ASSERT_TRUE(by_hand.row(orphan));
    EXPECT_EQ(by_hand.row(orphan)->at("outcome"), "rolled back");
    EXPECT_FALSE(is_prepared(orphan));
    EXPECT_TRUE(sku_lockable("sku-c"));
    EXPECT_EQ(stock("sku-c"), 10);
}

TEST_F(TwoPhaseRecovery, CommitsByHandAndRefusesUnsafeOrUnknownGids) {
    const auto d = new_global_id();
    reserve("sku-a", gid(d, 0));
    authorize("acct-a", gid(d, 1));
    for (std::size_t i : {0u, 1u}) {
        auto done = recover({"--json", "--commit", gid(d, i)});
        EXPECT_EQ(done.status, 0);
        ASSERT_TRUE(done.row(gid(d, i)));
        EXPECT_EQ(done.row(gid(d, i))->at("outcome"), "committed");
    }
    EXPECT_EQ(stock("sku-a"), 9);
    EXPECT_EQ(funds("acct-a"), 70);
    EXPECT_TRUE(sku_lockable("sku-a"));

    EXPECT_EQ(recover({"--commit", "x'; DROP TABLE stock; --"}).status, 2);
    EXPECT_EQ(stock("sku-a"), 9);
    EXPECT_EQ(recover({"--rollback", gid(new_global_id(), 0)}).status, 1);  // not prepared
    EXPECT_NE(recover({"--commit", gid(d, 0), "--rollback", gid(d, 1)}).status, 0);
    EXPECT_NE(recover({"--resolve-older-than", "-1"}).status, 0);
}

}  // namespace
}  // namespace ordo::testing
