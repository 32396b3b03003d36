// The sagas on PostgreSQL in both modes: confirmation, compensation, deadlines, customer cancels,
// invariants under concurrency; intake idempotence and runner leases.

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <functional>
#include <map>
#include <mutex>
#include <ostream>
#include <pqxx/pqxx>
#include <random>
#include <thread>

#include "eventstore/event_store.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/partition.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"
#include "sagas/intake.hpp"
#include "sagas/pg_schedule.hpp"
#include "sagas/process_stream.hpp"
#include "sagas/runner.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/saga_stack.hpp"
#include "tests/support/shard_map.hpp"
#include "tests/support/upcasters.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;

// A mode, on one store or on a store sharded over two (an order's streams spread over both).
struct SagaCase {
    const char* mode;
    int shards;
};

// How a case reads in the test log.
void PrintTo(const SagaCase& c, std::ostream* os) {
    *os << c.mode << " on " << c.shards << (c.shards == 1 ? " shard" : " shards");
}

// Every scenario runs in both modes, on one store and over two shards: the same outcomes,
// the same invariants, the same view.
class Saga : public ::testing::TestWithParam<SagaCase> {
   protected:
    std::string mode() const { return GetParam().mode; }
    int shards() const { return GetParam().shards; }

    nlohmann::json step(const nlohmann::json& saga, const std::string& name) {
        for (const auto& s : saga["steps"]) {
            if (s["name"] == name) return s;
        }
        return nullptr;
    }

    nlohmann::json get(SagaStack& stack, const std::string& path) {
        auto r = stack.queries().get(path);
        EXPECT_EQ(r.status, 200) << path << ": " << r.body;
        return r.status == 200 ? r.json() : nlohmann::json{};
    }
};

TEST_P(Saga, AnOrderWithStockAndFundsIsConfirmedCommittedAndCaptured) {
    SagaStack stack{mode(), {}, shards()};
    stack.receive("sku-a", 10);
    stack.receive("sku-b", 10);
    stack.deposit("acct-1", 1000);
    ASSERT_EQ(stack.place("o-1", "acct-1", {{"sku-a", 2, 100}, {"sku-b", 3, 50}}), 202);
    EXPECT_EQ(stack.settle("o-1"), "confirmed");
    expect_invariants(stack);
    EXPECT_EQ(get(stack, "/v1/inventory/sku-a")["on_hand"], 8);
    EXPECT_EQ(get(stack, "/v1/inventory/sku-b")["available"], 7);
    auto account = get(stack, "/v1/accounts/acct-1");
    EXPECT_EQ(account["balance"], 650);
    EXPECT_EQ(account["held"], 0);
    auto saga = stack.saga("o-1");
    EXPECT_EQ(saga["status"], "completed");
    EXPECT_EQ(saga["mode"], mode());
    // Over two shards the order's streams are spread: each shard holds some of them.
    for (const auto* shard : stack.shards()) {
        EXPECT_GT(scalar(shard->admin_url(), "SELECT count(DISTINCT stream_id) FROM ordo.events"),
                  0)
            << "no stream on " << shard->name();
    }
    EXPECT_EQ(saga["order_id"], "o-1");
    for (const auto* name : {"reserve:sku-a", "reserve:sku-b", "authorize", "confirm",
                             "commit:sku-a", "commit:sku-b", "capture"}) {
        auto s = step(saga, name);
        ASSERT_TRUE(s.is_object()) << name << " missing in " << saga.dump();
        EXPECT_EQ(s["status"], "succeeded") << name;
        EXPECT_EQ(s["attempts"], 1) << name;
        EXPECT_TRUE(s["started_at"].is_string());
        EXPECT_TRUE(s["finished_at"].is_string());
        EXPECT_TRUE(s["error"].is_null());
    }
}

TEST_P(Saga, OneLineOfThreeOutOfStockCancelsAndReleasesTheOthers) {
    SagaStack stack{mode(), {}, shards()};
    stack.receive("sku-a", 10);
    stack.receive("sku-b", 10);
    stack.receive("sku-c", 1);
    stack.deposit("acct-1", 1000);
    ASSERT_EQ(stack.place("o-2", "acct-1", {{"sku-a", 2, 10}, {"sku-b", 2, 10}, {"sku-c", 5, 10}}),
              202);
    EXPECT_EQ(stack.settle("o-2"), "cancelled");
    EXPECT_EQ(get(stack, "/v1/orders/o-2")["cancel_reason"], "insufficient_stock");
    expect_invariants(stack);
    for (const auto* sku : {"sku-a", "sku-b"}) {
        auto level = get(stack, std::string{"/v1/inventory/"} + sku);
        EXPECT_EQ(level["available"], 10) << sku;
        EXPECT_EQ(level["reserved"], 0) << sku;
    }
    EXPECT_EQ(get(stack, "/v1/accounts/acct-1")["available"], 1000);
    auto saga = stack.saga("o-2");
    EXPECT_EQ(saga["status"], "compensated");
    EXPECT_EQ(step(saga, "reserve:sku-c")["status"], "rejected");
    EXPECT_TRUE(
        step(saga, "reserve:sku-c")["error"].get<std::string>().starts_with("insufficient_stock"));
    EXPECT_EQ(step(saga, "release:sku-a")["status"], "succeeded");
}

TEST_P(Saga, InsufficientFundsCancelsAndReleasesTheStock) {
    SagaStack stack{mode(), {}, shards()};
    stack.receive("sku-a", 10);
    stack.deposit("acct-poor", 50);
    ASSERT_EQ(stack.place("o-3", "acct-poor", {{"sku-a", 2, 100}}), 202);
    EXPECT_EQ(stack.settle("o-3"), "cancelled");
    EXPECT_EQ(get(stack, "/v1/orders/o-3")["cancel_reason"], "insufficient_funds");
    expect_invariants(stack);
    EXPECT_EQ(get(stack, "/v1/inventory/sku-a")["available"], 10);
    EXPECT_EQ(stack.saga("o-3")["status"], "compensated");
}

TEST_P(Saga, APaymentStepPastItsDeadlineTimesOutAndCompensates) {
    SagaStack stack{mode(),
                    {{"ORDO_SAGA_STEP_TIMEOUT_MS", "4000"}, {"ORDO_SAGA_TIMEOUT_MS", "6000"}},
                    shards()};
    stack.receive("sku-a", 10);
    stack.deposit("acct-1", 1000);
    // The payments side is down for this account: every authorization fails with a
    // transient error and is retried, until the deadline passes.
    stack.set_payments_down("acct-1", true);
    ASSERT_EQ(stack.place("o-4", "acct-1", {{"sku-a", 1, 100}}), 202);
    EXPECT_EQ(stack.settle("o-4"), "cancelled");
    EXPECT_EQ(get(stack, "/v1/orders/o-4")["cancel_reason"], "timeout");
    expect_invariants(stack);
    auto saga = stack.saga("o-4");
    EXPECT_EQ(saga["status"], "compensated");
    auto authorize = step(saga, "authorize");
    ASSERT_TRUE(authorize.is_object()) << saga.dump();
    EXPECT_GE(authorize["attempts"].get<int>(), 2);  // retried before the deadline
    EXPECT_NE(authorize["status"], "succeeded");
    EXPECT_TRUE(authorize["error"].is_string());
    EXPECT_EQ(get(stack, "/v1/accounts/acct-1")["available"], 1000);
    EXPECT_EQ(get(stack, "/v1/inventory/sku-a")["available"], 10);
}

TEST_P(Saga, ACustomerCancelRacingTheSagaEndsConsistently) {
    SagaStack stack{mode(), {}, shards()};
    stack.receive("sku-a", 100);
    stack.deposit("acct-1", 100000);
    int cancelled = 0;
    for (int i = 0; i < 6; ++i) {
        const auto id = "o-race-" + std::to_string(i);
        ASSERT_EQ(stack.place(id, "acct-1", {{"sku-a", 1, 10}}), 202);
        auto cancel = stack.commands().post_json("/v1/orders/" + id + "/cancel",
                                                 {{"reason", "changed my mind"}});
        // Accepted while pending; a conflict when the saga confirmed first.
        ASSERT_TRUE(cancel.status == 202 || cancel.status == 409) << cancel.body;
        const auto status = stack.settle(id);
        // Accepted means the order was still pending: it can no longer be confirmed.
        EXPECT_EQ(status, cancel.status == 202 ? "cancelled" : "confirmed") << id;
        if (status == "cancelled") {
            ++cancelled;
            EXPECT_EQ(get(stack, "/v1/orders/" + id)["cancel_reason"], "customer_request");
        }
    }
    EXPECT_GT(cancelled, 0);  // sent right after the order, most cancels win the race
    expect_invariants(stack);
}

TEST_P(Saga, TwoHundredConcurrentOrdersForScarceStockAndFundsKeepEveryInvariant) {
    SagaStack stack{mode(), {}, shards()};
    const std::vector<std::string> skus{"s-1", "s-2", "s-3", "s-4"};
    for (const auto& sku : skus) stack.receive(sku, 40);
    for (int a = 0; a < 10; ++a) stack.deposit("acct-" + std::to_string(a), 2'000);
    std::atomic<int> accepted{0};
    std::vector<std::thread> clients;
    for (int c = 0; c < 8; ++c) {
        clients.emplace_back([&, c] {
            std::mt19937 rng(static_cast<unsigned>(c));
            for (int i = 0; i < 25; ++i) {
                const auto id = "o-" + std::to_string(c) + "-" + std::to_string(i);
                std::vector<std::tuple<std::string, std::int64_t, std::int64_t>> lines;
                const auto first = rng() % skus.size();
                for (std::size_t l = 0; l < 1 + rng() % 2; ++l) {
                    lines.emplace_back(skus[(first + l) % skus.size()], 1 + rng() % 3,
                                       50 + rng() % 100);
                }
                if (stack.place(id, "acct-" + std::to_string(rng() % 10), lines) == 202) ++accepted;
            }
        });
    }
    for (auto& t : clients) t.join();
    ASSERT_EQ(accepted, 200);
    int confirmed = 0, cancelled = 0;
    for (int c = 0; c < 8; ++c) {
        for (int i = 0; i < 25; ++i) {
            const auto status = stack.settle("o-" + std::to_string(c) + "-" + std::to_string(i));
            confirmed += status == "confirmed";
            cancelled += status == "cancelled";
        }
    }
    EXPECT_EQ(confirmed + cancelled, 200);
    // 160 units of stock for ~400 asked, 20,000 of money for ~60,000: both outcomes happen.
    EXPECT_GT(confirmed, 0);
    EXPECT_GT(cancelled, 0);
    expect_invariants(stack);
}

// The invariants over two shards read both shards' events, and find a stream whose events
// sit on both shards, and an event on a shard that does not own its partition.
TEST(SagaInvariants, OverTwoShardsReadEveryShardAndFindAStreamOnTheWrongShard) {
    TestDatabase control;
    TestDatabase second{false, 1};
    auto [rc, out] = write_two_shard_map(control, second, 4);
    ASSERT_EQ(rc, 0) << out;
    auto append = [](const TestDatabase& db, const std::string& stream, const std::string& type,
                     const nlohmann::json& payload) {
        pqxx::connection conn{db.admin_url()};
        eventstore::EventStore::prepare(conn);
        pqxx::work txn{conn};
        eventstore::EventStore::append(txn, stream, eventstore::ExpectedVersion::any(),
                                       {{platform::new_uuid(), type, payload, {}}});
        txn.commit();
    };
    // "probe-<n>" on each shard under the spread map (partition p of 4 on shard p mod 2).
    auto probe_on = [](int shard) {
        for (int i = 0;; ++i) {
            auto stream = "probe-" + std::to_string(i);
            if (platform::partition_of(stream, 4) % 2 == shard) return stream;
        }
    };
    const auto first = probe_on(0);
    append(control, first, "Noted", {{"n", 1}});
    append(second, probe_on(1), "Noted", {{"n", 1}});
    EXPECT_EQ(invariant_violations(control, &second), std::vector<std::string>{});
    // A reservation made twice, both on shard 1: seen only if shard 1 is read.
    std::string sku;
    for (int i = 0; sku.empty(); ++i) {
        auto candidate = "s" + std::to_string(i);
        if (platform::partition_of("inventory-" + candidate, 4) % 2 == 1) sku = candidate;
    }
    for (int i = 0; i < 2; ++i) {
        append(second, "inventory-" + sku, "StockReserved", {{"order_id", "o-1"}, {"quantity", 1}});
    }
    // `first` written on shard 1 too, past the fence that keeps it off.
    const auto partition = std::to_string(platform::partition_of(first, 4));
    auto on_second = [&](const std::string& sql) {
        pqxx::connection conn{second.admin_url()};
        pqxx::work txn{conn};
        txn.exec(sql);
        txn.commit();
    };
    on_second("DELETE FROM ordo.partition_fences WHERE partition = " + partition);
    append(second, first, "Noted", {{"n", 2}});
    on_second("INSERT INTO ordo.partition_fences (partition, partitions) VALUES (" + partition +
              ", 4)");
    const auto violations = invariant_violations(control, &second);
    auto found = [&](const std::string& text) {
        return std::any_of(violations.begin(), violations.end(),
                           [&](const std::string& v) { return v.find(text) != std::string::npos; });
    };
    EXPECT_TRUE(found("StockReserved twice on inventory-" + sku))
        << ::testing::PrintToString(violations);
    EXPECT_TRUE(found("stream " + first + " has events on both shards"))
        << ::testing::PrintToString(violations);
    EXPECT_TRUE(
        found(" of " + first + " is on a shard that does not own its partition " + partition))
        << ::testing::PrintToString(violations);
    // Read from the first shard only, the store shows none of it.
    EXPECT_EQ(invariant_violations(control), std::vector<std::string>{});
}

// An order `order` placed on `conn`'s store (one line, total 5), read back as the intake
// sees it: upcast as the runtime does (it is stored at version 1).
eventstore::RecordedEvent place_order(pqxx::connection& conn, const std::string& order) {
    nlohmann::json placed = {{"order_id", order},
                             {"customer_id", "c"},
                             {"account_id", "a"},
                             {"lines", {{{"sku", "s"}, {"quantity", 1}, {"unit_price", 5}}}},
                             {"total", 5}};
    {
        pqxx::work txn{conn};
        eventstore::EventStore::append(txn, "order-" + order, eventstore::ExpectedVersion::any(),
                                       {{platform::new_uuid(), "OrderPlaced", placed, {}}});
        txn.commit();
    }
    pqxx::read_transaction txn{conn};
    return upcasters().upcast(
        eventstore::EventStore::read_stream(txn, "order-" + order, 1, 1).at(0));
}

// The intake may see an event again (a rewound checkpoint, a retried dead letter): it then
// appends nothing, because the events it derives are the same, ids and all.
TEST(SagaIntake, ApplyingTheSameEventAgainAppendsNothing) {
    TestDatabase db;
    pqxx::connection conn{db.sagas_url()};
    eventstore::EventStore::prepare(conn);
    const auto event = place_order(conn, "o-again");
    auto feed = sagas::intake(sagas::Mode::kChoreography);
    for (int i = 0; i < 2; ++i) {
        pqxx::work txn{conn};
        projections::SqlReadModelTxn target{txn};
        feed->apply(target, event);
        txn.commit();
    }
    for (const auto* stream : {"inventory.fulfillment-o-again", "payments.fulfillment-o-again",
                               "orders.fulfillment-o-again"}) {
        EXPECT_EQ(scalar(db.admin_url(), std::string{"SELECT version FROM ordo.streams WHERE "
                                                     "stream_id = '"} +
                                             stream + "'"),
                  1)
            << stream;
    }
    EXPECT_EQ(scalar(db.admin_url(), "SELECT count(*) FROM ordo.saga_schedule"), 3);
}

// Over shards an OrderPlaced's choreography starts commit on their own shards before the
// intake's checkpoint: a crash can leave one reactor started and the event to be applied
// again, perhaps by a sharded service restarted in orchestration. The order goes on as it began:
// the other reactors start, no orchestrator does, and the started one gets nothing twice.
TEST(SagaIntake, APartlyStartedChoreographyIsFinishedWhenTheIntakeComesBackInOrchestration) {
    TestDatabase db;
    pqxx::connection conn{db.sagas_url()};
    eventstore::EventStore::prepare(conn);
    const auto event = place_order(conn, "o-partly");
    // What the choreography intake appended to the inventory reactor's shard before the crash:
    // its start, exactly as that intake writes it (here taken from a scratch database the
    // intake fed in full).
    const std::string inventory = "inventory.fulfillment-o-partly";
    eventstore::RecordedEvent started = [&] {
        TestDatabase scratch;
        pqxx::connection other{scratch.sagas_url()};
        eventstore::EventStore::prepare(other);
        {
            pqxx::work txn{other};
            projections::SqlReadModelTxn target{txn};
            sagas::intake(sagas::Mode::kChoreography)->apply(target, event);
            txn.commit();
        }
        pqxx::read_transaction txn{other};
        return eventstore::EventStore::read_stream(txn, inventory, 1, 1).at(0);
    }();
    {
        pqxx::work txn{conn};
        eventstore::EventStore::append(txn, inventory, eventstore::ExpectedVersion::no_stream(),
                                       {{started.event_id, started.type, started.payload,
                                         started.metadata, started.schema_version}});
        txn.commit();
    }
    {
        // The intake of a sharded store (its appends on their shards, apart from its
        // checkpoint), here one shard: the store of this database.
        platform::pg::Pool pool{
            {.url = db.sagas_url(), .size = 2, .preparers = {&eventstore::EventStore::prepare}}};
        eventstore::EventStore store{pool};
        eventstore::OneShard shards{store};
        pqxx::work txn{conn};
        projections::SqlReadModelTxn target{txn};
        sagas::intake(sagas::Mode::kOrchestration, &shards)->apply(target, event);
        txn.commit();
    }
    auto version = [&](const std::string& stream) {
        return scalar(db.admin_url(),
                      "SELECT coalesce((SELECT version FROM ordo.streams WHERE "
                      "stream_id = '" +
                          stream + "'), 0)");
    };
    EXPECT_EQ(version("saga.fulfillment-o-partly"), 0);
    EXPECT_EQ(version(inventory), 1);
    EXPECT_EQ(version("payments.fulfillment-o-partly"), 1);
    EXPECT_EQ(version("orders.fulfillment-o-partly"), 1);
}

// Unsharded, an OrderPlaced's starts commit with the intake's checkpoint: a reactor's
// stream alone cannot be a crash's leftover, so the intake placing in orchestration does not
// ask for one, and the order is placed in the mode in force.
TEST(SagaIntake, UnshardedAReactorsStreamAloneDoesNotTurnAnOrderToChoreography) {
    TestDatabase db;
    pqxx::connection conn{db.sagas_url()};
    eventstore::EventStore::prepare(conn);
    const auto event = place_order(conn, "o-stray");
    {
        pqxx::work txn{conn};
        eventstore::EventStore::append(txn, "inventory.fulfillment-o-stray",
                                       eventstore::ExpectedVersion::no_stream(),
                                       {{platform::new_uuid(), "Stray", {}, {}}});
        txn.commit();
    }
    {
        pqxx::work txn{conn};
        projections::SqlReadModelTxn target{txn};
        sagas::intake(sagas::Mode::kOrchestration)->apply(target, event);
        txn.commit();
    }
    auto version = [&](const std::string& stream) {
        return scalar(db.admin_url(),
                      "SELECT coalesce((SELECT version FROM ordo.streams WHERE stream_id = '" +
                          stream + "'), 0)");
    };
    EXPECT_EQ(version("saga.fulfillment-o-stray"), 1);
    EXPECT_EQ(version("inventory.fulfillment-o-stray"), 1);
    EXPECT_EQ(version("payments.fulfillment-o-stray"), 0);
    EXPECT_EQ(version("orders.fulfillment-o-stray"), 0);
}

// A process history written as the runner would, without commands: an order placed, the
// intake's start in `mode`, then every due step of each process succeeding, round by round,
// each round its own transaction (and so its own recorded_at).
class ProcessHistory {
   public:
    ProcessHistory(TestDatabase& db, std::string order, sagas::Mode mode)
        : db_{db}, conn_{db.sagas_url()}, order_{std::move(order)} {
        eventstore::EventStore::prepare(conn_);
        {
            pqxx::work txn{conn_};
            eventstore::EventStore::append(
                txn, "order-" + order_, eventstore::ExpectedVersion::no_stream(),
                {{platform::new_uuid(),
                  "OrderPlaced",
                  {{"order_id", order_},
                   {"customer_id", "c"},
                   {"account_id", "a"},
                   {"lines",
                    {{{"sku", "s-1"},
                      {"quantity", 1},
                      {"unit_price", {{"amount", 5}, {"currency", "EUR"}}}},
                     {{"sku", "s-2"},
                      {"quantity", 2},
                      {"unit_price", {{"amount", 3}, {"currency", "EUR"}}}}}},
                   {"total", 11}},
                  {},
                  2}});
            txn.commit();
        }
        start(mode);
    }

    // The intake of `mode` starts the order's processes.
    void start(sagas::Mode mode) {
        eventstore::RecordedEvent placed = [&] {
            pqxx::read_transaction txn{conn_};
            return upcasters().upcast(
                eventstore::EventStore::read_stream(txn, "order-" + order_, 1, 1).at(0));
        }();
        pqxx::work txn{conn_};
        projections::SqlReadModelTxn target{txn};
        sagas::intake(mode)->apply(target, placed);
        txn.commit();
    }

    // Runs the process of `kind` round by round until nothing more is due; its events.
    std::vector<eventstore::RecordedEvent> run(sagas::ProcessKind kind) {
        const auto stream = sagas::stream_of(kind, order_);
        const sagas::Policy policy;
        for (int round = 0; round < 20; ++round, now_ += 10) {
            pqxx::work txn{conn_};
            eventstore::PgSession session{txn, &upcasters()};
            auto loaded = sagas::load_process(session, stream);
            auto next = sagas::advance(kind, loaded.state, policy, now_);
            for (const auto& step : sagas::due_steps(loaded.state, now_)) {
                for (auto& e : sagas::record_attempt(
                         step, step.attempts + 1, domain::CommandSucceeded{}, policy, now_, 0.5)) {
                    next.push_back(std::move(e));
                }
            }
            if (next.empty()) break;
            std::vector<eventstore::NewEvent> batch;
            for (const auto& e : next) {
                batch.push_back({platform::new_uuid(),
                                 sagas::event_type(e),
                                 sagas::encode_payload(e),
                                 {},
                                 domain::schema_version(e)});
            }
            session.append(stream, eventstore::ExpectedVersion::exact(loaded.version), batch);
            txn.commit();
        }
        pqxx::read_transaction txn{conn_};
        eventstore::PgSession session{txn, &upcasters()};
        return session.read_stream(stream, 1, 1000);
    }

    // The saga view's row of the order in `schema`, as text.
    std::string row(const std::string& schema = "read") {
        pqxx::connection admin{db_.admin_url()};
        pqxx::read_transaction txn{admin};
        return txn
            .exec_params1("SELECT t::text FROM " + schema + ".sagas t WHERE order_id = $1",
                          order_)[0]
            .as<std::string>();
    }

   private:
    TestDatabase& db_;
    pqxx::connection conn_;
    std::string order_;
    std::int64_t now_ = 1'800'000'000'000;
};

// A second saga view's table, in schema `other`, that the projector's role writes.
void second_view_schema(const TestDatabase& db) {
    pqxx::connection admin{db.admin_url()};
    pqxx::work txn{admin};
    txn.exec("CREATE SCHEMA other");
    txn.exec("CREATE TABLE other.sagas (LIKE read.sagas INCLUDING ALL)");
    txn.exec("GRANT USAGE ON SCHEMA other TO ordo_projector");
    txn.exec("GRANT SELECT, INSERT, UPDATE ON other.sagas TO ordo_projector");
    txn.commit();
}

// Applies `e` with `view` in a transaction of the projector's own role.
void apply_view(pqxx::connection& projector, projections::Projection& view,
                const eventstore::RecordedEvent& e) {
    pqxx::work txn{projector};
    projections::SqlReadModelTxn target{txn};
    view.apply(target, e);
    txn.commit();
}

// The saga view folds each event onto its last fold of the stream instead of reading the
// stream again. Whatever order the events come in (in turn, one again after a retried batch,
// with a gap), each row it writes is the row a view that has folded nothing shows.
TEST(SagaView, FoldsOntoItsLastFoldAndShowsWhatAFreshViewShows) {
    TestDatabase db;
    ProcessHistory history{db, "o-view", sagas::Mode::kOrchestration};
    const auto events = history.run(sagas::ProcessKind::kFulfillment);
    ASSERT_GE(events.size(), 8u);
    ASSERT_EQ(events.back().type, "ProcessEnded");

    pqxx::connection projector{db.projector_url()};
    eventstore::EventStore::prepare(projector);
    auto apply = [&](projections::Projection& view, const eventstore::RecordedEvent& e) {
        apply_view(projector, view, e);
        return history.row();
    };
    auto folding = sagas::saga_view_projection("read", &upcasters());
    // In turn, with the third event applied twice and the sixth left out (a gap).
    for (std::size_t i = 0; i < events.size(); ++i) {
        if (i == 5) continue;
        std::vector<std::size_t> times{i};
        if (i == 2) times.push_back(i);
        for (auto k : times) {
            const auto shown = apply(*folding, events[k]);
            EXPECT_EQ(shown, apply(*sagas::saga_view_projection("read", &upcasters()), events[k]))
                << "after " << events[k].type << " at version " << events[k].version;
        }
    }
    // An earlier event again (a rewound checkpoint) after the last.
    const auto again = apply(*folding, events[3]);
    EXPECT_EQ(again, apply(*sagas::saga_view_projection("read", &upcasters()), events[3]));
    EXPECT_EQ(scalar(db.admin_url(), "SELECT version FROM read.sagas WHERE order_id = 'o-view'"),
              events[3].version)
        << "the view follows the log: " << again;
}

// In choreography an order's three process streams may sit on different partitions, so the
// view applies them in any interleaving, live and in a rebuild alike: once all are applied
// the row is the same, its time included.
TEST(SagaView, AChoreographedOrderShowsTheSameWhateverOrderItsStreamsAreAppliedIn) {
    TestDatabase db;
    ProcessHistory history{db, "o-chor", sagas::Mode::kChoreography};
    std::vector<std::vector<eventstore::RecordedEvent>> streams;
    for (auto kind : {sagas::ProcessKind::kInventory, sagas::ProcessKind::kPayments,
                      sagas::ProcessKind::kOrders}) {
        streams.push_back(history.run(kind));
        ASSERT_FALSE(streams.back().empty());
    }
    // The reactors wait for each other's facts, which nothing publishes here: the inventory
    // reactor runs its reservations, the others only start. So the streams end at different
    // times, and the two orders below end on different events.
    ASSERT_NE(streams.front().back().recorded_at, streams.back().back().recorded_at);
    second_view_schema(db);
    pqxx::connection projector{db.projector_url()};
    eventstore::EventStore::prepare(projector);
    // Stream by stream, first to last, in one schema; last to first in the other.
    auto forward = sagas::saga_view_projection("read", &upcasters());
    for (const auto& stream : streams) {
        for (const auto& e : stream) apply_view(projector, *forward, e);
    }
    auto backward = sagas::saga_view_projection("other", &upcasters());
    for (auto it = streams.rbegin(); it != streams.rend(); ++it) {
        for (const auto& e : *it) apply_view(projector, *backward, e);
    }
    EXPECT_EQ(history.row("read"), history.row("other"));
}

// The view applies the runtime's batches with one write per order: after each batch, every
// row is the one that applying the batch's events one by one leaves. Two orders, one
// orchestrated and one choreographed, their four streams interleaved, in batches of 1 to 8.
TEST(SagaView, ABatchLeavesTheRowsItsEventsLeaveOneByOne) {
    TestDatabase db;
    ProcessHistory orchestrated{db, "o-batch-1", sagas::Mode::kOrchestration};
    ProcessHistory choreographed{db, "o-batch-2", sagas::Mode::kChoreography};
    std::vector<std::vector<eventstore::RecordedEvent>> streams;
    streams.push_back(orchestrated.run(sagas::ProcessKind::kFulfillment));
    for (auto kind : {sagas::ProcessKind::kInventory, sagas::ProcessKind::kPayments,
                      sagas::ProcessKind::kOrders}) {
        streams.push_back(choreographed.run(kind));
    }
    std::vector<eventstore::RecordedEvent> events;  // round robin over the streams
    for (std::size_t i = 0; events.size() < 200; ++i) {
        bool any = false;
        for (const auto& stream : streams) {
            if (i < stream.size()) events.push_back(stream[i]);
            any = any || i < stream.size();
        }
        if (!any) break;
    }
    ASSERT_GT(events.size(), 15u);
    second_view_schema(db);
    auto rows = [&](const std::string& schema) {
        pqxx::connection admin{db.admin_url()};
        pqxx::read_transaction txn{admin};
        std::vector<std::string> out;
        for (const auto& r : txn.exec("SELECT t::text FROM " + schema + ".sagas t ORDER BY 1")) {
            out.push_back(r[0].as<std::string>());
        }
        return out;
    };
    pqxx::connection projector{db.projector_url()};
    eventstore::EventStore::prepare(projector);
    auto one_by_one = sagas::saga_view_projection("read", &upcasters());
    auto batched = sagas::saga_view_projection("other", &upcasters());
    const std::size_t sizes[] = {1, 2, 3, 5, 8};
    std::size_t at = 0;
    for (std::size_t b = 0; at < events.size(); ++b) {
        const auto end = std::min(events.size(), at + sizes[b % 5]);
        projections::EventRefs batch;
        for (std::size_t i = at; i < end; ++i) {
            apply_view(projector, *one_by_one, events[i]);
            batch.push_back(&events[i]);
        }
        pqxx::work txn{projector};
        projections::SqlReadModelTxn target{txn};
        batched->apply_batch(target, batch);
        txn.commit();
        ASSERT_EQ(rows("other"), rows("read")) << "after events " << at << " to " << end;
        at = end;
    }
    EXPECT_EQ(rows("read").size(), 2u);
}

// An order whose streams are of both modes (the intake's mode switched while it was placed):
// a batch holding both leaves the row one by one would, the last event's mode winning.
TEST(SagaView, ABatchWithAnOrdersStreamsOfBothModesLeavesTheRowOneByOneWould) {
    TestDatabase db;
    ProcessHistory history{db, "o-mixed", sagas::Mode::kChoreography};
    const auto inventory = history.run(sagas::ProcessKind::kInventory);
    // The intake keeps an order in the mode it runs in, so the other mode's stream is copied
    // from another order's.
    ProcessHistory other{db, "o-mixed-source", sagas::Mode::kOrchestration};
    const auto source = other.run(sagas::ProcessKind::kFulfillment);
    const auto fulfillment = [&] {
        pqxx::connection conn{db.sagas_url()};
        eventstore::EventStore::prepare(conn);
        pqxx::work txn{conn};
        std::vector<eventstore::NewEvent> copies;
        for (const auto& e : source) {
            copies.push_back({platform::new_uuid(), e.type, e.payload, {}, e.schema_version});
        }
        const auto stream = sagas::stream_of(sagas::ProcessKind::kFulfillment, "o-mixed");
        eventstore::EventStore::append(txn, stream, eventstore::ExpectedVersion::no_stream(),
                                       copies);
        auto read = eventstore::PgSession{txn, &upcasters()}.read_stream(stream, 1, 1000);
        txn.commit();
        return read;
    }();
    ASSERT_GE(fulfillment.size(), 2u);
    ASSERT_GE(inventory.size(), 2u);
    second_view_schema(db);
    pqxx::connection projector{db.projector_url()};
    eventstore::EventStore::prepare(projector);
    auto one_by_one = sagas::saga_view_projection("read", &upcasters());
    auto batched = sagas::saga_view_projection("other", &upcasters());
    for (const auto& order : {std::vector<const eventstore::RecordedEvent*>{
                                  &fulfillment[0], &inventory[0], &inventory[1]},
                              std::vector<const eventstore::RecordedEvent*>{
                                  &inventory[0], &fulfillment[0], &fulfillment[1]}}) {
        projections::EventRefs batch;
        for (const auto* e : order) {
            apply_view(projector, *one_by_one, *e);
            batch.push_back(e);
        }
        pqxx::work txn{projector};
        projections::SqlReadModelTxn target{txn};
        batched->apply_batch(target, batch);
        txn.commit();
        EXPECT_EQ(history.row("other"), history.row("read"));
    }
}

// A command side that answers every command after `delay`, and notes which runner sent
// which command id.
class SlowBus final : public sagas::CommandBus {
   public:
    SlowBus(std::string runner, std::chrono::milliseconds delay,
            std::vector<std::pair<std::string, std::string>>& sent, std::mutex& mutex)
        : runner_{std::move(runner)}, delay_{delay}, sent_{sent}, mutex_{mutex} {}

    domain::CommandOutcome send(const std::string& command_id, const domain::InternalCommand&,
                                const eventstore::Metadata&) override {
        std::this_thread::sleep_for(delay_);
        std::lock_guard lock{mutex_};
        sent_.emplace_back(runner_, command_id);
        return domain::CommandSucceeded{};
    }

   private:
    std::string runner_;
    std::chrono::milliseconds delay_;
    std::vector<std::pair<std::string, std::string>>& sent_;
    std::mutex& mutex_;
};

// A process whose rounds together outlast the lease stays with the runner that has it: it
// extends the lease as it goes, so a second runner never takes the process over and sends
// its commands again. (Resends would be deduplicated by the command log, but a takeover
// doubles the load exactly when commands are slow.)
TEST(SagaRunner, ALongProcessKeepsItsLeaseAndNoOtherRunnerSendsItsCommands) {
    TestDatabase db;
    {
        pqxx::connection conn{db.sagas_url()};
        eventstore::EventStore::prepare(conn);
        pqxx::work txn{conn};
        eventstore::EventStore::append(
            txn, "order-o-lease", eventstore::ExpectedVersion::any(),
            {{platform::new_uuid(),
              "OrderPlaced",
              {{"order_id", "o-lease"},
               {"customer_id", "c"},
               {"account_id", "a"},
               {"lines", {{{"sku", "s1"}, {"quantity", 1}, {"unit_price", 5}}}},
               {"total", 5}},
              {}}});
        auto placed = upcasters().upcast(
            eventstore::EventStore::read_stream(txn, "order-o-lease", 1, 1).at(0));
        projections::SqlReadModelTxn target{txn};
        sagas::intake(sagas::Mode::kOrchestration)->apply(target, placed);
        txn.commit();
    }
    std::vector<std::pair<std::string, std::string>> sent;
    std::mutex mutex;
    platform::SystemClock clock;
    std::atomic<bool> stop{false};
    sagas::RunnerOptions options;
    options.workers = 1;
    options.lease = 6s;
    options.idle_poll = 20ms;
    // Three rounds of 2.5 s (reserve and authorize, confirm, commit and capture): 7.5 s,
    // longer than the lease, while each round leaves 3.5 s of it for a slow machine.
    constexpr auto kDelay = 2500ms;
    // A runner as `ordo serve sagas` runs it, with its own pool and metrics.
    struct Instance {
        Instance(const TestDatabase& db, SlowBus b)
            : pool{{.url = db.sagas_url(),
                    .size = 4,
                    .preparers = {&eventstore::EventStore::prepare}}},
              store{pool},
              schedule{pool},
              bus{std::move(b)} {}
        platform::pg::Pool pool;
        eventstore::EventStore store;
        sagas::PgSchedule schedule;
        SlowBus bus;
        platform::metrics::Registry metrics;
        std::unique_ptr<sagas::Runner> runner;
        std::thread thread;
    };
    auto start = [&](const std::string& name) {
        auto i = std::make_unique<Instance>(db, SlowBus{name, kDelay, sent, mutex});
        i->runner = std::make_unique<sagas::Runner>(options, i->store, i->schedule, i->bus, clock,
                                                    platform::Logger::null_logger(), i->metrics);
        i->thread = std::thread{[&stop, r = i->runner.get()] { r->run(stop); }};
        return i;
    };
    auto first = start("first");
    ASSERT_TRUE(eventually([&] {
        std::lock_guard lock{mutex};
        return !sent.empty();
    }));
    auto second = start("second");  // idle, polling for anything due
    const bool ended = eventually(
        [&] {
            return scalar(db.admin_url(),
                          "SELECT count(*) FROM ordo.events WHERE stream_id = "
                          "'saga.fulfillment-o-lease' AND event_type = 'ProcessEnded'") == 1;
        },
        60s);
    stop = true;
    first->thread.join();
    second->thread.join();
    ASSERT_TRUE(ended);
    std::map<std::string, int> times;
    for (const auto& [runner, id] : sent) {
        EXPECT_EQ(runner, "first") << id;
        ++times[id];
    }
    EXPECT_EQ(times.size(), 5u);  // reserve, authorize, confirm, commit, capture
    for (const auto& [id, n] : times) EXPECT_EQ(n, 1) << id;
}

// A command side that refuses to start each command the first `refusals` times (not sent:
// its queues are full, or no connection came free in time), then runs it.
class OverloadedBus final : public sagas::CommandBus {
   public:
    explicit OverloadedBus(int refusals) : refusals_{refusals} {}

    domain::CommandOutcome send(const std::string& command_id, const domain::InternalCommand&,
                                const eventstore::Metadata&) override {
        std::lock_guard lock{mutex_};
        if (++sends_[command_id] <= refusals_) {
            return domain::CommandNotSent{"no database connection came free in time"};
        }
        return domain::CommandSucceeded{};
    }
    std::map<std::string, int> sends() {
        std::lock_guard lock{mutex_};
        return sends_;
    }

   private:
    int refusals_;
    std::mutex mutex_;
    std::map<std::string, int> sends_;
};

// A step is never failed by an overloaded command side alone: with one attempt allowed per
// step, a process whose every command is refused three times still completes, each step
// on its first attempt, and nothing records a failed attempt.
TEST(SagaRunner, ACommandTheCommandSideWouldNotStartIsNoAttempt) {
    TestDatabase db;
    {
        pqxx::connection conn{db.sagas_url()};
        eventstore::EventStore::prepare(conn);
        pqxx::work txn{conn};
        eventstore::EventStore::append(
            txn, "order-o-busy", eventstore::ExpectedVersion::any(),
            {{platform::new_uuid(),
              "OrderPlaced",
              {{"order_id", "o-busy"},
               {"customer_id", "c"},
               {"account_id", "a"},
               {"lines", {{{"sku", "s1"}, {"quantity", 1}, {"unit_price", 5}}}},
               {"total", 5}},
              {}}});
        auto placed = upcasters().upcast(
            eventstore::EventStore::read_stream(txn, "order-o-busy", 1, 1).at(0));
        projections::SqlReadModelTxn target{txn};
        sagas::intake(sagas::Mode::kOrchestration)->apply(target, placed);
        txn.commit();
    }
    sagas::RunnerOptions options;
    options.workers = 1;
    options.idle_poll = 20ms;
    options.not_sent_delay = 20ms;
    options.policy.actions.max_attempts = 1;
    options.policy.settlements.max_attempts = 1;
    platform::pg::Pool pool{
        {.url = db.sagas_url(), .size = 4, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore store{pool};
    sagas::PgSchedule schedule{pool};
    OverloadedBus bus{3};
    platform::metrics::Registry metrics;
    platform::SystemClock clock;
    sagas::Runner runner{options, store, schedule, bus, clock, platform::Logger::null_logger(),
                         metrics};
    std::atomic<bool> stop{false};
    std::thread thread{[&] { runner.run(stop); }};
    const auto count = [&](const std::string& type) {
        return scalar(db.admin_url(),
                      "SELECT count(*) FROM ordo.events WHERE stream_id = "
                      "'saga.fulfillment-o-busy' AND event_type = '" +
                          type + "'");
    };
    const bool ended = eventually([&] { return count("ProcessEnded") == 1; }, 60s);
    stop = true;
    thread.join();
    ASSERT_TRUE(ended);
    EXPECT_EQ(count("StepAttemptFailed"), 0);
    EXPECT_EQ(count("StepGaveUp"), 0);
    EXPECT_EQ(count("StepSucceeded"), 5);  // reserve, authorize, confirm, commit, capture
    EXPECT_EQ(scalar(db.admin_url(),
                     "SELECT count(*) FROM ordo.events WHERE stream_id = "
                     "'saga.fulfillment-o-busy' AND event_type = 'StepSucceeded' AND "
                     "(payload->>'attempt')::int <> 1"),
              0);
    auto sends = bus.sends();
    EXPECT_EQ(sends.size(), 5u);
    for (const auto& [id, n] : sends) EXPECT_EQ(n, 4) << id;
    EXPECT_NE(metrics.render().find("ordo_saga_steps_not_sent_total 15\n"), std::string::npos)
        << metrics.render();
}

INSTANTIATE_TEST_SUITE_P(
    Modes, Saga,
    ::testing::Values(SagaCase{"orchestration", 1}, SagaCase{"choreography", 1},
                      SagaCase{"orchestration", 2}, SagaCase{"choreography", 2}),
    [](const auto& info) {
        return std::string{info.param.mode} + (info.param.shards == 2 ? "OverTwoShards" : "");
    });

}  // namespace
}  // namespace ordo::testing
