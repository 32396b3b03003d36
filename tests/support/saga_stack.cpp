// The saga stack's processes and helpers: a trigger that fails an account's payments, orders
// driven through the APIs, and the SQL checks of every invariant.
#include "tests/support/saga_stack.hpp"
#include "tests/support/nats.hpp"

#include <gtest/gtest.h>

#include <csignal>
#include <pqxx/pqxx>
#include <thread>

#include "tests/support/conditions.hpp"
#include "tests/support/shard_map.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

std::string at(std::uint16_t port) {
    return "127.0.0.1:" + std::to_string(port);
}

void expect_up(std::uint16_t port) {
    if (!wait_healthy(port)) {
        throw std::runtime_error("a service did not come up on port " + std::to_string(port));
    }
}

}  // namespace

SagaStack::SagaStack(std::string mode, std::map<std::string, std::string> extra_env, int shards)
    : mode_{std::move(mode)}, command_port_{free_port()}, query_port_{free_port()} {
    if (shards != 1 && shards != 2) throw std::invalid_argument("a saga stack has 1 or 2 shards");
    env_ = db_.service_env();
    env_.merge(std::map<std::string, std::string>{
        {"ORDO_NATS_URL", nats_admin_url()},
        {"ORDO_NATS_CA_FILE", nats_ca_file()},
        // A stream nobody publishes to: every process reads the store.
        {"ORDO_NATS_STREAM", "ORDO_UNUSED_" + db_.name()},
        {"ORDO_NATS_SUBJECT_PREFIX", "unused." + db_.name()},
        {"ORDO_PARTITIONS", "4"},
        {"ORDO_SAGA_MODE", mode_},
        // Deadlines far beyond any machine's pace: an order that should be confirmed is
        // not cancelled because the machine is slow. Tests of deadlines set their own.
        {"ORDO_SAGA_STEP_TIMEOUT_MS", "120000"},
        {"ORDO_SAGA_TIMEOUT_MS", "120000"},
        {"ORDO_LOG_LEVEL", "error"}});
    for (auto& [k, v] : extra_env) env_[k] = v;
    if (shards == 2) {
        second_ = std::make_unique<TestDatabase>(false, 1);
        auto [rc, out] = write_two_shard_map(db_, *second_, 4);
        if (rc != 0) throw std::runtime_error("ordo shards init failed: " + out);
        env_["ORDO_NATS_STREAM"] = "ORDO_SAGAS_" + db_.name();
        env_["ORDO_NATS_SUBJECT_PREFIX"] = "sagas." + db_.name();
        for (const char* shard : {"0", "1"}) {
            const auto port = free_port();
            relays_.push_back(start("relay", port, {"--shard", shard}));
            expect_up(port);
        }
    }
    command_ = start("command", command_port_);
    projector_ = start("projector", free_port());
    query_ = start("query", query_port_);
    start_sagas();
    expect_up(command_port_);
    expect_up(query_port_);
}

SagaStack::~SagaStack() = default;

std::vector<const TestDatabase*> SagaStack::shards() const {
    if (second_) return {&db_, second_.get()};
    return {&db_};
}

std::unique_ptr<Process> SagaStack::start(const std::string& component, std::uint16_t port,
                                          std::vector<std::string> arguments) {
    std::vector<std::string> argv{ordo_binary(), "serve", component, "--address", at(port)};
    if (component == "command" || component == "query") argv.push_back("--insecure-no-auth");
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    return std::make_unique<Process>(argv, env_);
}

HttpClient SagaStack::commands() const {
    return HttpClient{"127.0.0.1", command_port_};
}
HttpClient SagaStack::queries() const {
    return HttpClient{"127.0.0.1", query_port_};
}

void SagaStack::kill_sagas() {
    sagas_->signal(SIGKILL);
    sagas_->wait(10s);
    sagas_.reset();
}

void SagaStack::start_sagas() {
    const auto port = free_port();
    sagas_ = start("sagas", port);
    expect_up(port);
}

void SagaStack::switch_mode(const std::string& mode) {
    sagas_->signal(SIGTERM);
    ASSERT_EQ(sagas_->wait(30s), 0) << "the saga runner did not stop cleanly";
    mode_ = mode;
    env_["ORDO_SAGA_MODE"] = mode;
    start_sagas();
}

// (Blocking the account's row from an open transaction would not do: it would hold the xid
// horizon back and stall every subscriber, which is a different failure.) Every shard gets
// the trigger: the account's stream is on one of them.
void SagaStack::set_payments_down(const std::string& account, bool down) {
    for (const auto* shard : shards()) {
        pqxx::connection admin{shard->admin_url()};
        pqxx::work ddl{admin};
        ddl.exec("DROP TRIGGER IF EXISTS payments_down ON ordo.events");
        if (down) {
            ddl.exec(
                "CREATE OR REPLACE FUNCTION ordo.payments_down() RETURNS trigger LANGUAGE "
                "plpgsql AS $$ BEGIN IF NEW.stream_id = " +
                ddl.quote("account-" + account) +
                " AND NEW.event_type = 'PaymentAuthorized' THEN RAISE EXCEPTION 'payments "
                "unavailable' USING ERRCODE = '55P03'; END IF; RETURN NEW; END $$");
            ddl.exec(
                "CREATE TRIGGER payments_down BEFORE INSERT ON ordo.events FOR EACH ROW EXECUTE "
                "FUNCTION ordo.payments_down()");
        }
        ddl.commit();
    }
}

void SagaStack::receive(const std::string& sku, std::int64_t quantity) {
    auto r = commands().post_json("/v1/inventory/" + sku + "/receipts", {{"quantity", quantity}});
    ASSERT_EQ(r.status, 200) << r.body;
}

void SagaStack::deposit(const std::string& account, std::int64_t amount) {
    auto r = commands().post_json("/v1/accounts/" + account + "/deposits", {{"amount", amount}});
    ASSERT_EQ(r.status, 200) << r.body;
}

int SagaStack::place(
    const std::string& order_id, const std::string& account,
    const std::vector<std::tuple<std::string, std::int64_t, std::int64_t>>& lines) {
    nlohmann::json body = {{"order_id", order_id},
                           {"customer_id", "cust-" + account},
                           {"account_id", account},
                           {"lines", nlohmann::json::array()}};
    for (const auto& [sku, quantity, price] : lines) {
        body["lines"].push_back({{"sku", sku}, {"quantity", quantity}, {"unit_price", price}});
    }
    return commands().post_json("/v1/orders", body).status;
}

std::string SagaStack::order_status(const std::string& order_id) {
    auto r = queries().get("/v1/orders/" + order_id);
    if (r.status != 200) return "";
    return r.json().value("status", "");
}

nlohmann::json SagaStack::saga(const std::string& order_id) {
    auto r = queries().get("/v1/sagas/" + order_id);
    return r.status == 200 ? r.json() : nlohmann::json{};
}

std::string SagaStack::settle(const std::string& order_id) {
    std::string status;
    const bool ended = eventually(
        [&] {
            status = order_status(order_id);
            if (status != "confirmed" && status != "cancelled") return false;
            auto s = saga(order_id);
            return s.is_object() && s.value("status", "running") != "running";
        },
        120s, 50ms);
    if (!ended) ADD_FAILURE() << "order " << order_id << " did not settle; status " << status;
    return status;
}

std::vector<std::string> invariant_violations(const TestDatabase& db,
                                              const TestDatabase* second_shard) {
    // Each query returns one text column per violation.
    static const char* const kChecks[] = {
        // No step takes effect twice.
        "SELECT event_type || ' twice on ' || stream_id || ' for order ' || "
        "(payload->>'order_id') FROM ordo.events WHERE event_type IN ('StockReserved', "
        "'ReservationReleased', 'ReservationCommitted', 'PaymentAuthorized', "
        "'AuthorizationVoided', 'PaymentCaptured') GROUP BY event_type, stream_id, "
        "payload->>'order_id' HAVING count(*) > 1",
        // Inventory: the read model equals the store; nothing left reserved; never below 0.
        "WITH s AS (SELECT substr(stream_id, 11) AS sku, sum(CASE event_type WHEN "
        "'StockReceived' THEN (payload->>'quantity')::bigint WHEN 'ReservationCommitted' THEN "
        "-(payload->>'quantity')::bigint ELSE 0 END) AS on_hand FROM ordo.events WHERE "
        "category = 'inventory' GROUP BY 1) SELECT 'inventory ' || s.sku || ': read model "
        "on_hand ' || coalesce(i.on_hand::text, 'missing') || ', reserved ' || "
        "coalesce(i.reserved::text, '?') || '; store on_hand ' || s.on_hand FROM s LEFT JOIN "
        "read.inventory i ON i.sku = s.sku WHERE i.on_hand IS DISTINCT FROM s.on_hand OR "
        "i.reserved <> 0 OR s.on_hand < 0",
        // Accounts: balance = deposits - captured; nothing left held.
        "WITH s AS (SELECT substr(stream_id, 9) AS account, sum(CASE event_type WHEN "
        "'FundsDeposited' THEN (payload->>'amount')::bigint WHEN 'PaymentCaptured' THEN "
        "-(payload->>'amount')::bigint ELSE 0 END) AS balance FROM ordo.events WHERE "
        "category = 'account' GROUP BY 1) SELECT 'account ' || s.account || ': read model "
        "balance ' || coalesce(a.balance::text, 'missing') || ', held ' || "
        "coalesce(a.held::text, '?') || '; store balance ' || s.balance FROM s LEFT JOIN "
        "read.accounts a ON a.account_id = s.account WHERE a.balance IS DISTINCT FROM "
        "s.balance OR a.held <> 0 OR s.balance < 0",
        // Every order settled, and its saga with it.
        "SELECT 'order ' || o.order_id || ' is ' || o.status || ', its saga ' || "
        "coalesce(s.status, 'missing') FROM read.orders o LEFT JOIN read.sagas s USING "
        "(order_id) WHERE o.status = 'pending' OR s.status IS NULL OR (o.status = 'confirmed') "
        "<> (s.status = 'completed') OR s.status NOT IN ('completed', 'compensated')",
        // Reservations and holds per order: none left over, whatever the outcome.
        "SELECT 'order ' || (payload->>'order_id') || ' still holds ' || sum(CASE event_type "
        "WHEN 'StockReserved' THEN (payload->>'quantity')::bigint WHEN 'PaymentAuthorized' THEN "
        "(payload->>'amount')::bigint WHEN 'ReservationReleased' THEN "
        "-(payload->>'quantity')::bigint WHEN 'ReservationCommitted' THEN "
        "-(payload->>'quantity')::bigint ELSE -(payload->>'amount')::bigint END) FROM "
        "ordo.events WHERE event_type IN ('StockReserved', 'ReservationReleased', "
        "'ReservationCommitted', 'PaymentAuthorized', 'AuthorizationVoided', "
        "'PaymentCaptured') GROUP BY payload->>'order_id' HAVING sum(CASE event_type WHEN "
        "'StockReserved' THEN (payload->>'quantity')::bigint WHEN 'PaymentAuthorized' THEN "
        "(payload->>'amount')::bigint WHEN 'ReservationReleased' THEN "
        "-(payload->>'quantity')::bigint WHEN 'ReservationCommitted' THEN "
        "-(payload->>'quantity')::bigint ELSE -(payload->>'amount')::bigint END) <> 0",
        // A confirmed order: every line committed, its total captured once; a cancelled one
        // neither. One aggregation of the events per order, not a look-up per order (those
        // made the check quadratic: a 30-minute soak's never finished).
        "WITH e AS (SELECT payload->>'order_id' AS order_id, count(*) FILTER (WHERE event_type "
        "= 'ReservationCommitted') AS commits, count(*) FILTER (WHERE event_type = "
        "'PaymentCaptured') AS captures, sum((payload->>'amount')::bigint) FILTER (WHERE "
        "event_type = 'PaymentCaptured') AS captured FROM ordo.events WHERE event_type IN "
        "('ReservationCommitted', 'PaymentCaptured') GROUP BY 1) SELECT o.status || ' order ' "
        "|| o.order_id || ': ' || coalesce(e.commits, 0) || ' commits for ' || "
        "jsonb_array_length(o.lines) || ' lines, captured ' || coalesce(e.captured, 0) || ' of "
        "' || o.total FROM read.orders o LEFT JOIN e USING (order_id) WHERE (o.status = "
        "'confirmed' AND (coalesce(e.commits, 0) <> jsonb_array_length(o.lines) OR "
        "coalesce(e.captures, 0) <> 1)) OR (o.status = 'cancelled' AND coalesce(e.commits, 0) "
        "+ coalesce(e.captures, 0) > 0)",
    };
    // A shard holds no event of a partition it does not own (fenced there).
    static const char* const kOnItsShard =
        "SELECT 'event ' || e.event_id || ' of ' || e.stream_id || ' is on a shard that does "
        "not own its partition ' || f.partition FROM ordo.events e JOIN ordo.partition_fences f "
        "ON f.partition = (e.stream_hash % f.partitions)::integer";
    std::vector<std::string> violations;
    auto collect = [&](pqxx::transaction_base& tx, const std::string& check) {
        for (const auto& row : tx.exec(check)) violations.push_back(row[0].as<std::string>());
    };
    pqxx::connection conn{db.admin_url()};
    // Never committed: it writes only a temporary table.
    pqxx::work tx{conn};
    std::string events = "ordo.events";
    if (second_shard) {
        // The checks read every shard's events, gathered here beside the read models.
        pqxx::connection other{second_shard->admin_url()};
        pqxx::read_transaction read{other};
        collect(read, kOnItsShard);
        const auto rows =
            read.exec1(
                    "SELECT coalesce(json_agg(json_build_object('stream_id', stream_id, "
                    "'category', "
                    "category, 'event_type', event_type, 'payload', payload)), '[]')::text FROM "
                    "ordo.events")[0]
                .as<std::string>();
        tx.exec(
            "CREATE TEMPORARY TABLE all_events ON COMMIT DROP AS SELECT 0 AS shard, stream_id, "
            "category, event_type, payload FROM ordo.events");
        tx.exec_params(
            "INSERT INTO all_events SELECT 1, * FROM jsonb_to_recordset($1::jsonb) AS e(stream_id "
            "text, category text, event_type text, payload jsonb)",
            rows);
        collect(tx, kOnItsShard);
        collect(tx,
                "SELECT 'stream ' || stream_id || ' has events on both shards' FROM all_events "
                "GROUP BY stream_id HAVING count(DISTINCT shard) > 1");
        events = "all_events";
    }
    for (std::string check : kChecks) {
        for (auto at = check.find("ordo.events"); at != std::string::npos;
             at = check.find("ordo.events", at + events.size())) {
            check.replace(at, std::string_view{"ordo.events"}.size(), events);
        }
        collect(tx, check);
    }
    return violations;
}

void expect_invariants(const SagaStack& stack) {
    const auto shards = stack.shards();
    const auto* second = shards.size() > 1 ? shards[1] : nullptr;
    std::vector<std::string> violations;
    eventually([&] { return (violations = invariant_violations(*shards[0], second)).empty(); }, 60s,
               50ms);
    for (const auto& v : violations) ADD_FAILURE() << v;
}

}  // namespace ordo::testing
