// Dead letters under skip and halt policies, retries after a fix, a failing sink pausing its
// partition; webhooks that lose nothing while the receiver is down, and their configuration.

#include <gtest/gtest.h>

#include <mutex>
#include <set>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/http/http_server.hpp"
#include "platform/pg/pg.hpp"
#include "projections/runtime.hpp"
#include "projections/webhook.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/process.hpp"
#include "tests/support/projector.hpp"
#include "tests/support/query_stack.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

constexpr int kPoison = 13;

// A test-only read model: counts how often each event was applied, and fails for good on a
// receipt of kPoison (or, when `every`, on every event: a broken sink) until the test
// "fixes" it. With `in_sql` the poison fails in the database, after a write of its own, as
// a constraint or a bad cast would.
class PoisonProjection final : public projections::Projection {
   public:
    explicit PoisonProjection(std::atomic<bool>& fixed, bool every = false, bool in_sql = false)
        : fixed_{fixed}, every_{every}, in_sql_{in_sql} {}
    std::string name() const override { return "poison"; }
    std::vector<std::string> categories() const override { return {"inventory"}; }
    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& event) override {
        auto& txn = target.sql();
        if (every_ && !fixed_) throw std::runtime_error("the sink refuses every event");
        const bool poison = event.payload.at("quantity").get<int>() == kPoison && !fixed_;
        if (poison && !in_sql_) throw std::runtime_error("cannot apply a receipt of 13");
        txn.exec_params(
            "INSERT INTO read.poison_applied (event_id, n) VALUES ($1, 1) ON CONFLICT (event_id) "
            "DO UPDATE SET n = read.poison_applied.n + 1",
            event.event_id);
        if (poison) txn.exec_params("SELECT 1 / $1::int", 0);  // division_by_zero, permanent
    }

   private:
    std::atomic<bool>& fixed_;
    bool every_;
    bool in_sql_;
};

// The runtime's options for these tests: a dead-letter policy, a breaker, quick status.
projections::RuntimeOptions resilience_options(const TestDatabase& db,
                                               projections::DeadLetterPolicy policy,
                                               platform::BreakerOptions breaker = {}) {
    auto o = Projector::options(db, "test-projector", QueryStack::kPartitions);
    o.poll_interval = 100ms;
    o.default_dead_letter_policy = policy;
    o.status_interval = 100ms;
    o.breaker = breaker;
    return o;
}

struct Appended {
    std::vector<std::string> event_ids;
    std::string trace_id;
};

// Receipts of `quantities` on one stream (so one partition, in this order).
Appended append(const TestDatabase& db, const std::string& sku, const std::vector<int>& quantities,
                const std::string& type = "StockReceived") {
    platform::pg::Pool pool{
        {.url = db.command_url(), .size = 1, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore store{pool};
    auto trace = platform::new_trace();
    Appended out{{}, trace.trace_id_hex()};
    for (int q : quantities) {
        auto id = platform::new_uuid();
        store.append("inventory-" + sku, eventstore::ExpectedVersion::any(),
                     {{id,
                       type,
                       {{"sku", sku}, {"quantity", q}},
                       {trace.trace_id_hex(), trace.span_id_hex(), "", "", "", "test"}}});
        out.event_ids.push_back(id);
    }
    return out;
}

// Created by the owner, as a migration would create it, with the projector's grants.
void create_poison_table(const TestDatabase& db) {
    pqxx::connection conn{db.migrator_url()};
    pqxx::work tx{conn};
    tx.exec(
        "CREATE TABLE read.poison_applied (event_id text PRIMARY KEY, n integer NOT NULL); "
        "GRANT SELECT, INSERT, UPDATE ON read.poison_applied TO ordo_projector");
    tx.commit();
}

std::vector<std::unique_ptr<projections::Projection>> poison_model(std::atomic<bool>& fixed,
                                                                   bool every = false,
                                                                   bool in_sql = false) {
    std::vector<std::unique_ptr<projections::Projection>> models;
    models.push_back(std::make_unique<PoisonProjection>(fixed, every, in_sql));
    return models;
}

nlohmann::json dead_letters(QueryStack& stack, const std::string& query = "") {
    auto res = stack.client().get("/v1/admin/dead-letters" + query);
    EXPECT_EQ(res.status, 200) << res.body;
    return res.json();
}

// The admin view's entry of the poison projection's partition that holds `sku`.
nlohmann::json partition_status(QueryStack& stack, int partition) {
    auto res = stack.client().get("/v1/admin/projections");
    if (res.status != 200) return nullptr;
    const auto body = res.json();
    for (const auto& p : body.at("projections")) {
        if (p.at("projection") == "poison" && p.at("partition") == partition) return p;
    }
    return nullptr;
}

int partition_of(const std::string& sku) {
    return platform::partition_of("inventory-" + sku, QueryStack::kPartitions);
}

std::int64_t applied(const TestDatabase& db) {
    return scalar(db.migrator_url(), "SELECT count(*) FROM read.poison_applied");
}

std::int64_t applied_twice(const TestDatabase& db) {
    return scalar(db.migrator_url(), "SELECT count(*) FROM read.poison_applied WHERE n <> 1");
}

TEST(DeadLetters, SkipPolicyParksThePoisonGoesOnAndARetryAfterAFixAppliesItOnce) {
    QueryStack stack;
    auto& db = stack.database();
    create_poison_table(db);
    std::atomic<bool> fixed{false};
    auto events = append(db, "s1", {1, 2, 3, 4, kPoison, 6, 7, 8, 9, 10});
    Projector projector{resilience_options(db, projections::DeadLetterPolicy::skip),
                        poison_model(fixed)};

    ASSERT_TRUE(eventually([&] { return applied(db) == 9; }));
    auto list = dead_letters(stack, "?projection=poison");
    ASSERT_EQ(list.at("dead_letters").size(), 1u) << list.dump();
    auto letter = list.at("dead_letters")[0];
    EXPECT_EQ(letter.at("event_id"), events.event_ids[4]);
    EXPECT_EQ(letter.at("status"), "parked");
    EXPECT_EQ(letter.at("policy"), "skip");
    EXPECT_EQ(letter.at("attempts"), 1);
    EXPECT_EQ(letter.at("type"), "StockReceived");
    EXPECT_EQ(letter.at("payload").at("quantity"), kPoison);
    EXPECT_NE(letter.at("error").get<std::string>().find("cannot apply a receipt of 13"),
              std::string::npos);
    EXPECT_TRUE(list.at("next_cursor").is_null());
    // The partition went past it: nothing pending, one open dead letter, breaker closed.
    ASSERT_TRUE(eventually([&] {
        auto p = partition_status(stack, partition_of("s1"));
        return p.is_object() && p.at("lag_events") == 0 && p.at("dead_letters") == 1 &&
               p.at("breaker") == "closed" && p.at("halted_on_dead_letter").is_null();
    })) << partition_status(stack, partition_of("s1")).dump();
    // Later events go on.
    append(db, "s1", {11, 12});
    ASSERT_TRUE(eventually([&] { return applied(db) == 11; }));

    fixed = true;
    const auto id = letter.at("id").get<std::int64_t>();
    auto res = stack.admin_client().request(
        "POST", "/v1/admin/dead-letters/" + std::to_string(id) + "/retry");
    ASSERT_EQ(res.status, 202) << res.body;
    EXPECT_EQ(res.json().at("status"), "retry_requested");
    ASSERT_TRUE(eventually(
        [&] { return dead_letters(stack, "?status=resolved").at("dead_letters").size() == 1; }));
    EXPECT_EQ(applied(db), 12);
    EXPECT_EQ(applied_twice(db), 0) << "every event applied exactly once";
    // A settled letter takes no more requests.
    EXPECT_EQ(stack.admin_client()
                  .request("POST", "/v1/admin/dead-letters/" + std::to_string(id) + "/skip")
                  .status,
              409);
}

// A poison that fails in the database (after writing) is parked like any other: its own
// writes are rolled back to the event's savepoint, and the transaction goes on to record
// the letter and the checkpoint. (It once left the transaction aborted, so the partition
// stalled at the event for good.)
TEST(DeadLetters, AnEventThatFailsInTheDatabaseIsParkedWithItsWritesUndone) {
    QueryStack stack;
    auto& db = stack.database();
    create_poison_table(db);
    std::atomic<bool> fixed{false};
    auto events = append(db, "s1", {1, 2, kPoison, 4, 5});
    Projector projector{resilience_options(db, projections::DeadLetterPolicy::skip),
                        poison_model(fixed, false, /*in_sql=*/true)};

    ASSERT_TRUE(eventually([&] {
        return dead_letters(stack, "?projection=poison&status=parked").at("dead_letters").size() ==
               1;
    })) << dead_letters(stack).dump();
    ASSERT_TRUE(eventually([&] { return applied(db) == 4; }));
    auto letter = dead_letters(stack, "?projection=poison").at("dead_letters")[0];
    EXPECT_EQ(letter.at("event_id"), events.event_ids[2]);
    EXPECT_NE(letter.at("error").get<std::string>().find("division by zero"), std::string::npos)
        << letter.dump();
    EXPECT_EQ(
        scalar(db.migrator_url(), "SELECT count(*) FROM read.poison_applied WHERE event_id = '" +
                                      events.event_ids[2] + "'"),
        0)
        << "the poison's own write was kept";
    EXPECT_EQ(applied_twice(db), 0);
}

TEST(DeadLetters, HaltPolicyStopsThePartitionAtThePoisonUntilSkipped) {
    QueryStack stack;
    auto& db = stack.database();
    create_poison_table(db);
    std::atomic<bool> fixed{false};
    auto events = append(db, "s2", {1, 2, 3, 4, kPoison, 6, 7});
    Projector projector{resilience_options(db, projections::DeadLetterPolicy::halt),
                        poison_model(fixed)};

    ASSERT_TRUE(eventually([&] { return dead_letters(stack).at("dead_letters").size() == 1; }));
    const auto id = dead_letters(stack).at("dead_letters")[0].at("id").get<std::int64_t>();
    EXPECT_EQ(dead_letters(stack).at("dead_letters")[0].at("policy"), "halt");
    // Halted: the checkpoint stays at the event before the poison, the rest waits.
    ASSERT_TRUE(eventually([&] {
        auto p = partition_status(stack, partition_of("s2"));
        return p.is_object() && p.at("halted_on_dead_letter") == id && p.at("lag_events") == 3;
    })) << partition_status(stack, partition_of("s2")).dump();
    EXPECT_EQ(applied(db), 4);
    EXPECT_EQ(
        scalar(db.migrator_url(),
               "SELECT global_position FROM ordo.projection_checkpoints WHERE projection = "
               "'poison' AND partition = " +
                   std::to_string(partition_of("s2"))),
        scalar(db.migrator_url(), "SELECT global_position FROM ordo.events WHERE event_id = '" +
                                      events.event_ids[3] + "'"));

    // Bad requests are refused with the field that is wrong, and change nothing.
    auto admin = stack.admin_client();
    for (const auto& [target, body] : std::vector<std::pair<std::string, std::string>>{
             {"/v1/admin/dead-letters/abc/skip", ""},
             {"/v1/admin/dead-letters/0/skip", ""},
             {"/v1/admin/dead-letters/-1/skip", ""},
             {"/v1/admin/dead-letters/99999999999999999999/skip", ""},
             {"/v1/admin/dead-letters/" + std::to_string(id) + "/skip?now=1", ""},
             {"/v1/admin/dead-letters/" + std::to_string(id) + "/skip", "{\"force\":true}"},
             {"/v1/admin/dead-letters/" + std::to_string(id) + "/skip", "nonsense"}}) {
        SCOPED_TRACE(target + " " + body);
        EXPECT_EQ(admin.request("POST", target, body).status, 422);
    }
    EXPECT_EQ(dead_letters(stack).at("dead_letters")[0].at("status"), "parked");
    EXPECT_EQ(admin.request("POST", "/v1/admin/dead-letters/999999/skip").status, 404);
    // The query service's old route points to the new one, for one release.
    auto moved =
        stack.client().request("POST", "/v1/admin/dead-letters/" + std::to_string(id) + "/skip");
    EXPECT_EQ(moved.status, 308);
    EXPECT_EQ(moved.header("location"), "http://127.0.0.1:" + std::to_string(stack.admin_port()) +
                                            "/v1/admin/dead-letters/" + std::to_string(id) +
                                            "/skip");
    EXPECT_EQ(dead_letters(stack).at("dead_letters")[0].at("status"), "parked");
    EXPECT_EQ(stack.client().get("/v1/admin/dead-letters?status=lost").status, 422);
    EXPECT_EQ(stack.client().get("/v1/admin/dead-letters?limit=0").status, 422);

    auto res = stack.admin_client().request(
        "POST", "/v1/admin/dead-letters/" + std::to_string(id) + "/skip");
    ASSERT_EQ(res.status, 202) << res.body;
    ASSERT_TRUE(eventually([&] { return applied(db) == 6; }));
    EXPECT_EQ(dead_letters(stack).at("dead_letters")[0].at("status"), "skipped");
    EXPECT_EQ(
        scalar(db.migrator_url(), "SELECT count(*) FROM read.poison_applied WHERE event_id = '" +
                                      events.event_ids[4] + "'"),
        0);
    EXPECT_EQ(applied_twice(db), 0);
    ASSERT_TRUE(eventually([&] {
        auto p = partition_status(stack, partition_of("s2"));
        return p.is_object() && p.at("halted_on_dead_letter").is_null() &&
               p.at("dead_letters") == 0 && p.at("lag_events") == 0;
    }));
}

TEST(DeadLetters, HaltedPartitionRetriedFromTheCommandLineAfterAFixAppliesThePoisonOnce) {
    QueryStack stack;
    auto& db = stack.database();
    create_poison_table(db);
    std::atomic<bool> fixed{false};
    append(db, "s3", {1, kPoison, 3});
    Projector projector{resilience_options(db, projections::DeadLetterPolicy::halt),
                        poison_model(fixed)};
    ASSERT_TRUE(eventually([&] { return dead_letters(stack).at("dead_letters").size() == 1; }));
    const auto id = dead_letters(stack).at("dead_letters")[0].at("id").get<std::int64_t>();
    EXPECT_EQ(applied(db), 1);

    // Retried before the fix: it fails again, stays parked, one more attempt counted.
    auto cli = [&](const std::string& action, std::int64_t which) {
        return run({"/usr/bin/env", "ORDO_COMMAND_DATABASE_URL=" + db.command_url(),
                    "ORDO_LOG_LEVEL=error", ordo_binary(), "dead-letters", action,
                    std::to_string(which)});
    };
    ASSERT_EQ(cli("retry", id), 0);
    ASSERT_TRUE(eventually([&] {
        auto l = dead_letters(stack).at("dead_letters")[0];
        return l.at("attempts") == 2 && l.at("status") == "parked";
    }));
    EXPECT_EQ(applied(db), 1);
    EXPECT_EQ(cli("retry", 999999), 4) << "no such letter";

    fixed = true;
    ASSERT_EQ(cli("retry", id), 0);
    ASSERT_TRUE(eventually([&] { return applied(db) == 3; }));
    EXPECT_EQ(dead_letters(stack).at("dead_letters")[0].at("status"), "resolved");
    EXPECT_EQ(applied_twice(db), 0) << "the retried event and those after it, once each";
    EXPECT_EQ(cli("skip", id), 5) << "a resolved letter is not parked";
}

// An HTTP receiver for the webhook, on a fixed port so it can go away and come back.
class Receiver {
   public:
    explicit Receiver(std::uint16_t port) : port_{port} { start(); }
    ~Receiver() { stop(); }
    void start() {
        platform::http::Router router;
        router.add("POST", "/hook", platform::http::Access::open,
                   [this](platform::http::Request& r) {
                       std::lock_guard lock{mutex_};
                       ids_.insert(r.header("ordo-event-id").value_or(""));
                       ++posts_;
                       traceparents_.insert(r.header("traceparent").value_or(""));
                       types_.insert(nlohmann::json::parse(r.body).at("type").get<std::string>());
                       return platform::http::Response::json(200, {{"ok", true}});
                   });
        platform::http::ServerOptions options;
        options.port = port_;
        server_ = std::make_unique<platform::http::Server>(
            options, std::move(router), platform::Logger::null_logger(), metrics_);
        server_->start();
    }
    void stop() {
        if (server_) server_->stop(std::chrono::seconds(1));
        server_.reset();
    }
    std::set<std::string> ids() {
        std::lock_guard lock{mutex_};
        return ids_;
    }
    std::set<std::string> types() {
        std::lock_guard lock{mutex_};
        return types_;
    }
    std::set<std::string> traceparents() {
        std::lock_guard lock{mutex_};
        return traceparents_;
    }

   private:
    std::uint16_t port_;
    platform::metrics::Registry metrics_;
    std::unique_ptr<platform::http::Server> server_;
    std::mutex mutex_;
    std::set<std::string> ids_;
    std::set<std::string> types_;
    std::set<std::string> traceparents_;
    std::size_t posts_ = 0;
};

double metric(platform::metrics::Registry& registry, const std::string& series) {
    auto text = registry.render();
    auto at = text.find("\n" + series + " ");
    if (at == std::string::npos) return -1;
    return std::stod(text.substr(at + series.size() + 2));
}

TEST(DeadLetters, ASinkFailingOnEveryTrickledEventPausesThePartitionInsteadOfParkingThemAll) {
    QueryStack stack;
    auto& db = stack.database();
    create_poison_table(db);
    std::atomic<bool> fixed{false};
    platform::BreakerOptions breaker;
    breaker.consecutive_failures = 2;
    breaker.cool_down = 200ms;
    breaker.max_cool_down = 1000ms;
    Projector projector{resilience_options(db, projections::DeadLetterPolicy::skip, breaker),
                        poison_model(fixed, true)};
    auto parked = [&] { return dead_letters(stack, "?projection=poison").at("dead_letters"); };
    const auto breaker_state = [&] {
        return metric(projector.metrics(), "ordo_breaker_state{breaker=\"poison\"}");
    };

    // Low traffic: each event comes alone, so each isolation pass holds one. The first few
    // cannot be told from poison and are parked.
    std::vector<std::string> ids;
    for (int i = 1; i <= 3; ++i) {
        ids.push_back(append(db, "t1", {i}).event_ids[0]);
        ASSERT_TRUE(eventually([&] { return parked().size() == static_cast<std::size_t>(i); }))
            << parked().dump();
    }
    const auto checkpoint_position = [&] {
        return scalar(db.migrator_url(),
                      "SELECT global_position FROM ordo.projection_checkpoints WHERE projection = "
                      "'poison' AND partition = " +
                          std::to_string(partition_of("t1")));
    };
    const auto last_parked =
        scalar(db.migrator_url(),
               "SELECT global_position FROM ordo.events WHERE event_id = '" + ids[2] + "'");
    ASSERT_EQ(checkpoint_position(), last_parked);
    // From then on the sink is blamed: the partition waits at its checkpoint, the breaker opens.
    for (int i = 4; i <= 8; ++i) {
        ids.push_back(append(db, "t1", {i}).event_ids[0]);
        ASSERT_TRUE(eventually([&] {
            return parked().size() == static_cast<std::size_t>(i) || breaker_state() == 1;
        })) << parked().dump();
    }
    ASSERT_TRUE(eventually([&] { return breaker_state() == 1; }, 30s))
        << projector.metrics().render();
    ASSERT_TRUE(eventually([&] {
        auto p = partition_status(stack, partition_of("t1"));
        return p.is_object() && p.at("lag_events") == 5 && p.at("dead_letters") == 3;
    })) << partition_status(stack, partition_of("t1")).dump();
    EXPECT_EQ(parked().size(), 3u) << "nothing parked beyond the first few";
    EXPECT_EQ(checkpoint_position(), last_parked);
    EXPECT_EQ(applied(db), 0);

    // Fixed: the partition goes on from its checkpoint, the parked ones are retried.
    fixed = true;
    ASSERT_TRUE(eventually([&] { return applied(db) == 5; }));
    for (const auto& letter : parked()) {
        auto res = stack.admin_client().request(
            "POST", "/v1/admin/dead-letters/" +
                        std::to_string(letter.at("id").get<std::int64_t>()) + "/retry");
        ASSERT_EQ(res.status, 202) << res.body;
    }
    ASSERT_TRUE(eventually([&] { return applied(db) == 8; }));
    ASSERT_TRUE(eventually(
        [&] { return dead_letters(stack, "?status=resolved").at("dead_letters").size() == 3; }));
    EXPECT_EQ(applied_twice(db), 0) << "every event applied exactly once";
    for (const auto& id : ids) {
        EXPECT_EQ(scalar(db.migrator_url(),
                         "SELECT count(*) FROM read.poison_applied WHERE event_id = '" + id + "'"),
                  1);
    }
    ASSERT_TRUE(eventually([&] { return breaker_state() == 0; }));
}

TEST(Webhook, ReceiverDownAndBackGetsEverySelectedEventNoneLost) {
    QueryStack stack;
    auto& db = stack.database();
    const auto port = free_port();
    Receiver receiver{port};
    std::vector<std::unique_ptr<projections::Projection>> models;
    models.push_back(std::make_unique<projections::WebhookProjection>(
        projections::WebhookOptions{.url = "http://127.0.0.1:" + std::to_string(port) + "/hook",
                                    .event_types = {"StockReceived"},
                                    .timeout = 500ms}));
    platform::BreakerOptions breaker;
    breaker.consecutive_failures = 2;
    breaker.cool_down = 200ms;
    breaker.max_cool_down = 1000ms;
    Projector projector{resilience_options(db, projections::DeadLetterPolicy::halt, breaker),
                        std::move(models)};

    std::set<std::string> expected;
    for (int i = 0; i < 8; ++i) {
        auto sku = "w" + std::to_string(i);
        for (auto& id : append(db, sku, {1, 2}).event_ids) expected.insert(id);
        append(db, sku, {3}, "StockCounted");  // not selected
    }
    ASSERT_TRUE(eventually([&] { return receiver.ids() == expected; }));

    receiver.stop();
    auto during = append(db, "w-down", {1, 2, 3, 4, 5});
    for (auto& id : during.event_ids) expected.insert(id);
    ASSERT_TRUE(eventually([&] {
        return metric(projector.metrics(), "ordo_breaker_state{breaker=\"webhook\"}") == 1;
    })) << projector.metrics().render();
    // Paused at the checkpoint, not skipping: nothing was parked.
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM ordo.dead_letters"), 0);

    receiver.start();
    ASSERT_TRUE(eventually([&] { return receiver.ids() == expected; }));
    EXPECT_EQ(receiver.types(), (std::set<std::string>{"StockReceived"}));
    auto traceparents = receiver.traceparents();
    EXPECT_TRUE(std::any_of(traceparents.begin(), traceparents.end(), [&](const std::string& t) {
        return t.rfind("00-" + during.trace_id + "-", 0) == 0;
    })) << "the event's trace travels in traceparent";
    ASSERT_TRUE(eventually([&] {
        return metric(projector.metrics(), "ordo_breaker_state{breaker=\"webhook\"}") == 0;
    }));
    EXPECT_GE(
        metric(projector.metrics(),
               "ordo_breaker_transitions_total{breaker=\"webhook\",from=\"closed\",to=\"open\"}"),
        1);
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM ordo.dead_letters"), 0);
}

TEST(Webhook, ConfigurationIsChecked) {
    EXPECT_EQ(projections::parse_event_types(" OrderPlaced, StockReceived ,"),
              (std::vector<std::string>{"OrderPlaced", "StockReceived"}));
    EXPECT_THROW(projections::parse_event_types("Order Placed"), platform::InvalidInput);
    EXPECT_THROW(projections::WebhookProjection(projections::WebhookOptions{.url = "ftp://x"}),
                 platform::InvalidInput);
    auto policies = projections::parse_dead_letter_policies("orders=halt, inventory = skip");
    EXPECT_EQ(policies.at("orders"), projections::DeadLetterPolicy::halt);
    EXPECT_EQ(policies.at("inventory"), projections::DeadLetterPolicy::skip);
    EXPECT_THROW(projections::parse_dead_letter_policies("orders=stop"), platform::InvalidInput);
    EXPECT_THROW(projections::parse_dead_letter_policies("=halt"), platform::InvalidInput);
}

}  // namespace
}  // namespace ordo::testing
