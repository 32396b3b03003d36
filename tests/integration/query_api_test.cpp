// The Query API over HTTP: read model resources, paging and filters, consistency-token waits, the
// read-only role, tokens and scopes.

#include <gtest/gtest.h>

#include <future>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <exception>
#include <functional>
#include <iterator>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "domain/ids.hpp"
#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/partition.hpp"
#include "platform/pg/pg.hpp"
#include "query/progress_watch.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/problem.hpp"
#include "tests/support/query_stack.hpp"
#include "tests/support/tokens.hpp"

// The Query API of docs/API.md over HTTP, against the query service on the query role. The
// read models are filled by the test directly (owner role), so that each test states
// exactly what the projections have written. Every test has a stack and a database of its own.
namespace ordo {
namespace {

using namespace std::chrono_literals;
using eventstore::Checkpoint;
using nlohmann::json;
using testing::error_fields;
using testing::eventually;
using testing::HttpClient;
using testing::HttpHeaders;
using testing::HttpResponse;
using testing::is_problem;
using testing::QueryStack;

// --- responses ---------------------------------------------------------------------------

::testing::AssertionResult is_ok(const HttpResponse& res) {
    if (res.status == 200 && res.header("content-type") == "application/json") {
        return ::testing::AssertionSuccess();
    }
    return ::testing::AssertionFailure()
           << "HTTP " << res.status << " " << res.header("content-type") << " " << res.body;
}

// --- read-model rows, as the projectors would write them -----------------------------------

struct OrderRow {
    std::string order_id;
    std::string customer_id = "cust-1";
    std::string status = "pending";
    std::int64_t placed_position = 1;
    std::int64_t version = 1;
    std::optional<std::string> cancel_reason{};
};

const json kLines = json::array({{{"sku", "sku-1"}, {"quantity", 2}, {"unit_price", 150}},
                                 {{"sku", "sku-2"}, {"quantity", 1}, {"unit_price", 700}}});

void put_order(QueryStack& stack, const OrderRow& o) {
    stack.fixtures().transact([&](auto& tx) {
        tx.exec_params(
            "INSERT INTO read.orders (order_id, customer_id, account_id, status, lines, total, "
            "cancel_reason, version, placed_position, placed_at, updated_at) VALUES ($1, $2, "
            "'acct-1', $3, $4::jsonb, 1000, $5, $6, $7, '2024-05-01T10:00:00Z', "
            "'2024-05-01T10:00:01.5Z') ON CONFLICT (order_id) DO UPDATE SET status = "
            "excluded.status, "
            "cancel_reason = excluded.cancel_reason, version = excluded.version",
            o.order_id, o.customer_id, o.status, kLines.dump(),
            o.cancel_reason ? o.cancel_reason->c_str() : nullptr, o.version, o.placed_position);
    });
}

void put_inventory(QueryStack& stack, const std::string& sku, std::int64_t on_hand,
                   std::int64_t reserved, std::int64_t version) {
    stack.fixtures().transact([&](auto& tx) {
        tx.exec_params(
            "INSERT INTO read.inventory (sku, on_hand, reserved, version, updated_at) "
            "VALUES ($1, $2, $3, $4, now()) ON CONFLICT (sku) DO UPDATE SET on_hand = $2, "
            "reserved = $3, version = $4",
            sku, on_hand, reserved, version);
    });
}

void put_account(QueryStack& stack, const std::string& account, std::int64_t balance,
                 std::int64_t held, std::int64_t version) {
    stack.fixtures().transact([&](auto& tx) {
        tx.exec_params(
            "INSERT INTO read.accounts (account_id, balance, held, version, updated_at) "
            "VALUES ($1, $2, $3, $4, now()) ON CONFLICT (account_id) DO UPDATE SET balance = $2, "
            "held = $3, version = $4",
            account, balance, held, version);
    });
}

const json kSagaSteps = json::array({{{"name", "reserve_stock"},
                                      {"status", "succeeded"},
                                      {"attempts", 1},
                                      {"started_at", "2024-05-01T10:00:01Z"},
                                      {"finished_at", "2024-05-01T10:00:02Z"},
                                      {"error", nullptr}},
                                     {{"name", "authorize_payment"},
                                      {"status", "failed"},
                                      {"attempts", 3},
                                      {"started_at", "2024-05-01T10:00:01Z"},
                                      {"finished_at", "2024-05-01T10:00:05Z"},
                                      {"error", "insufficient_funds"}}});

const json kSagaProcesses = json::array({{{"process", "saga.fulfillment-o-1"},
                                          {"status", "compensated"},
                                          {"end_reason", "insufficient_funds"}}});
constexpr const char* kSagaTrace = "4bf92f3577b34da6a3ce929d0e0e4736";

void put_saga(QueryStack& stack, const std::string& order_id, const std::string& status,
              std::int64_t version) {
    stack.fixtures().transact([&](auto& tx) {
        tx.exec_params(
            "INSERT INTO read.sagas (order_id, saga_id, mode, status, steps, processes, "
            "trace_id, version, updated_at) VALUES ($1, $2, 'orchestration', $3, $4::jsonb, "
            "$5::jsonb, $6, $7, now()) ON CONFLICT (order_id) DO UPDATE SET status = $3, "
            "version = $7",
            order_id, "saga-" + order_id, status, kSagaSteps.dump(), kSagaProcesses.dump(),
            kSagaTrace, version);
    });
}

struct TraceRow {
    std::string trace_id;
    std::uint64_t transaction_id;
    std::int64_t position;
    std::string stream;
    std::int64_t version;
    std::string type;
    std::optional<std::string> causation_id{};
};

void put_trace_event(QueryStack& stack, const TraceRow& t) {
    stack.fixtures().transact([&](auto& tx) {
        tx.exec_params(
            "INSERT INTO read.trace_events (trace_id, transaction_id, global_position, stream_id, "
            "stream_version, event_type, recorded_at, causation_id, correlation_id) VALUES "
            "($1, $2::text::xid8, $3, $4, $5, $6, '2024-05-01T10:00:00Z', $7, 'corr-1')",
            t.trace_id, std::to_string(t.transaction_id), t.position, t.stream, t.version, t.type,
            t.causation_id ? t.causation_id->c_str() : nullptr);
    });
}

int partition_of_order(const QueryStack& stack, const std::string& order_id) {
    return platform::partition_of(domain::order_stream(order_id), stack.partitions());
}

HttpHeaders token_header(const std::string& token) {
    return {{"X-Consistency-Token", token}};
}

// --- single resources --------------------------------------------------------------------

TEST(QueryApi, OrderIsTheReadModelRow) {
    QueryStack stack;
    put_order(stack, {.order_id = "o-1",
                      .status = "cancelled",
                      .placed_position = 7,
                      .version = 3,
                      .cancel_reason = "insufficient_stock"});
    put_order(stack, {.order_id = "o-2"});
    auto client = stack.client();

    auto res = client.get("/v1/orders/o-1");
    ASSERT_TRUE(is_ok(res));
    EXPECT_EQ(res.json(), (json{{"order_id", "o-1"},
                                {"customer_id", "cust-1"},
                                {"account_id", "acct-1"},
                                {"status", "cancelled"},
                                {"lines", kLines},
                                {"total", 1000},
                                {"cancel_reason", "insufficient_stock"},
                                {"version", 3},
                                {"updated_at", "2024-05-01T10:00:01.500000Z"}}));
    EXPECT_EQ(res.header("etag"), "\"3\"");

    auto pending = client.get("/v1/orders/o-2");
    ASSERT_TRUE(is_ok(pending));
    EXPECT_TRUE(pending.json().at("cancel_reason").is_null());
    EXPECT_EQ(pending.json().at("status"), "pending");
}

TEST(QueryApi, InventoryShowsWhatIsAvailable) {
    QueryStack stack;
    put_inventory(stack, "sku-1", 10, 3, 5);
    auto res = stack.client().get("/v1/inventory/sku-1");
    ASSERT_TRUE(is_ok(res));
    EXPECT_EQ(res.json(),
              (json{{"sku", "sku-1"}, {"on_hand", 10}, {"reserved", 3}, {"available", 7}}));
    EXPECT_EQ(res.header("etag"), "\"5\"");
}

TEST(QueryApi, AccountShowsWhatIsAvailable) {
    QueryStack stack;
    put_account(stack, "acct-1", 5000, 1200, 4);
    auto res = stack.client().get("/v1/accounts/acct-1");
    ASSERT_TRUE(is_ok(res));
    EXPECT_EQ(
        res.json(),
        (json{{"account_id", "acct-1"}, {"balance", 5000}, {"held", 1200}, {"available", 3800}}));
    EXPECT_EQ(res.header("etag"), "\"4\"");
}

TEST(QueryApi, SagaShowsItsSteps) {
    QueryStack stack;
    put_saga(stack, "o-1", "compensated", 6);
    auto res = stack.client().get("/v1/sagas/o-1");
    ASSERT_TRUE(is_ok(res));
    EXPECT_EQ(res.json(), (json{{"saga_id", "saga-o-1"},
                                {"order_id", "o-1"},
                                {"mode", "orchestration"},
                                {"status", "compensated"},
                                {"steps", kSagaSteps},
                                {"processes", kSagaProcesses},
                                {"trace_id", kSagaTrace}}));
    EXPECT_EQ(res.header("etag"), "\"6\"");
}

TEST(QueryApi, UnknownResourcesAreNotFound) {
    QueryStack stack;
    auto client = stack.client();
    for (const char* target : {"/v1/orders/o-1", "/v1/inventory/sku-1", "/v1/accounts/acct-1",
                               "/v1/sagas/o-1", "/v1/traces/0af7651916cd43dd8448eb211c80319c"}) {
        SCOPED_TRACE(target);
        auto res = client.get(target);
        EXPECT_TRUE(is_problem(res, 404, "not_found"));
        EXPECT_EQ(res.header("etag"), "");
    }
}

// Each single resource: its ETag is its version; If-None-Match with it is 304 without a body,
// and once the version moves on the old tag gets the new representation.
TEST(QueryApi, SingleResourcesAnswerIfNoneMatchUntilTheVersionChanges) {
    QueryStack stack;
    struct Resource {
        std::string target;
        std::function<void(std::int64_t version)> put;
    };
    std::vector<Resource> resources{
        {"/v1/orders/o-1",
         [&](std::int64_t v) { put_order(stack, {.order_id = "o-1", .version = v}); }},
        {"/v1/inventory/sku-1", [&](std::int64_t v) { put_inventory(stack, "sku-1", 5, 0, v); }},
        {"/v1/accounts/acct-1", [&](std::int64_t v) { put_account(stack, "acct-1", 5, 0, v); }},
        {"/v1/sagas/o-1", [&](std::int64_t v) { put_saga(stack, "o-1", "running", v); }},
    };
    auto client = stack.client();
    for (const auto& r : resources) {
        SCOPED_TRACE(r.target);
        r.put(1);
        auto first = client.get(r.target);
        ASSERT_TRUE(is_ok(first));
        ASSERT_EQ(first.header("etag"), "\"1\"");

        for (const std::string tags : {"\"1\"", "W/\"1\"", "\"7\", \"1\"", "*"}) {
            SCOPED_TRACE(tags);
            auto same = client.get(r.target, {{"If-None-Match", tags}});
            EXPECT_EQ(same.status, 304);
            EXPECT_EQ(same.body, "");
            EXPECT_EQ(same.header("etag"), "\"1\"");
        }
        EXPECT_TRUE(is_ok(client.get(r.target, {{"If-None-Match", "\"2\""}})));

        r.put(2);
        auto changed = client.get(r.target, {{"If-None-Match", "\"1\""}});
        ASSERT_TRUE(is_ok(changed));
        EXPECT_EQ(changed.header("etag"), "\"2\"");
        EXPECT_EQ(client.get(r.target, {{"If-None-Match", "\"2\""}}).status, 304);
    }
}

TEST(QueryApi, BadIdsAndParametersAreValidationFailures) {
    QueryStack stack;
    auto client = stack.client();
    const std::string long_id(65, 'a');
    struct Bad {
        std::string target;
        std::set<std::string> fields;
        HttpHeaders headers{};
    };
    for (const auto& bad : std::vector<Bad>{
             {"/v1/orders/o%201", {"path.order_id"}},
             {"/v1/orders/" + long_id, {"path.order_id"}},
             {"/v1/inventory/sku%21", {"path.sku"}},
             {"/v1/accounts/%C3%A9", {"path.account_id"}},
             {"/v1/sagas/o%3A1", {"path.order_id"}},
             {"/v1/traces/0AF7651916CD43DD8448EB211C80319C", {"path.trace_id"}},
             {"/v1/traces/0af7651916cd43dd8448eb211c80319", {"path.trace_id"}},
             {"/v1/traces/0af7651916cd43dd8448eb211c80319cc", {"path.trace_id"}},
             {"/v1/traces/zaf7651916cd43dd8448eb211c80319c", {"path.trace_id"}},
             {"/v1/orders/o-1?wait_ms=abc", {"query.wait_ms"}},
             {"/v1/orders/o-1?wait_ms=-1", {"query.wait_ms"}},
             {"/v1/orders/o-1?wait_ms=1.5", {"query.wait_ms"}},
             {"/v1/orders/o-1?waitms=100", {"query.waitms"}},
             {"/v1/orders/o-1", {"X-Consistency-Token"}, token_header("abc")},
             {"/v1/orders/o-1", {"X-Consistency-Token"}, token_header("1.-2")},
             {"/v1/orders/o-1", {"X-Consistency-Token"}, token_header("")},
             {"/v1/inventory/sku-1", {"X-Consistency-Token"}, token_header("1.2.3")},
             {"/v1/orders/bad%20id?wait_ms=x",
              {"path.order_id", "query.wait_ms", "X-Consistency-Token"},
              token_header("?")},
             {"/v1/admin/projections?limit=3", {"query.limit"}},
         }) {
        SCOPED_TRACE(bad.target);
        auto res = client.get(bad.target, bad.headers);
        EXPECT_TRUE(is_problem(res, 422, "validation_failed"));
        EXPECT_EQ(error_fields(res), bad.fields);
    }
    // An encoded slash inside an id never reaches the handler: the router refuses the path.
    EXPECT_TRUE(is_problem(client.get("/v1/orders/o%2F1"), 400, "bad_request"));
}

// --- the order list ----------------------------------------------------------------------

struct Page {
    std::vector<std::string> ids;
    std::optional<std::string> next;
};

Page get_page(HttpClient& client, const std::string& query,
              const std::optional<std::string>& cursor) {
    auto target = "/v1/orders?" + query + (cursor ? "&cursor=" + *cursor : "");
    auto res = client.get(target);
    EXPECT_TRUE(is_ok(res)) << target;
    Page page;
    if (res.status != 200) return page;
    auto body = res.json();
    for (const auto& item : body.at("items")) page.ids.push_back(item.at("order_id"));
    if (!body.at("next_cursor").is_null()) page.next = body.at("next_cursor").get<std::string>();
    return page;
}

std::vector<Page> all_pages(HttpClient& client, const std::string& query) {
    std::vector<Page> pages;
    std::optional<std::string> cursor;
    do {
        pages.push_back(get_page(client, query, cursor));
        cursor = pages.back().next;
    } while (cursor && pages.size() < 100);
    return pages;
}

const char* status_of(int i) {
    static const char* kStatuses[] = {"pending", "confirmed", "cancelled"};
    return kStatuses[i % 3];
}

// 45 orders of cust-1 at positions 100, 110, ... and some of another customer in between.
// Returns cust-1's ids newest first.
std::vector<std::string> put_customer_orders(QueryStack& stack) {
    std::vector<std::string> newest_first;
    for (int i = 0; i < 45; ++i) {
        auto id = "o-" + std::to_string(i);
        put_order(stack, {.order_id = id, .status = status_of(i), .placed_position = 100 + 10 * i});
        newest_first.insert(newest_first.begin(), id);
        if (i % 5 == 0) {
            put_order(stack, {.order_id = "other-" + std::to_string(i),
                              .customer_id = "cust-2",
                              .placed_position = 105 + 10 * i});
        }
    }
    return newest_first;
}

TEST(QueryApi, OrderListPagesNewestFirstWithoutDuplicates) {
    QueryStack stack;
    auto expected = put_customer_orders(stack);
    auto client = stack.client();

    auto pages = all_pages(client, "customer_id=cust-1&limit=20");
    ASSERT_EQ(pages.size(), 3u);
    EXPECT_EQ(pages[0].ids.size(), 20u);
    EXPECT_EQ(pages[1].ids.size(), 20u);
    EXPECT_EQ(pages[2].ids.size(), 5u);
    EXPECT_TRUE(pages[0].next && pages[1].next);
    EXPECT_FALSE(pages[2].next);
    std::vector<std::string> seen;
    for (const auto& p : pages) seen.insert(seen.end(), p.ids.begin(), p.ids.end());
    EXPECT_EQ(seen, expected);  // newest first, every order once

    // The default page is 20; a page that ends exactly at the last order has no next one.
    EXPECT_EQ(get_page(client, "customer_id=cust-1", std::nullopt).ids.size(), 20u);
    auto exact = all_pages(client, "customer_id=cust-1&limit=15");
    ASSERT_EQ(exact.size(), 3u);
    EXPECT_FALSE(exact[2].next);

    // Items are whole orders.
    auto res = client.get("/v1/orders?customer_id=cust-1&limit=1");
    ASSERT_TRUE(is_ok(res));
    auto item = res.json().at("items").at(0);
    EXPECT_EQ(item.at("order_id"), "o-44");
    EXPECT_EQ(item.at("lines"), kLines);
    EXPECT_EQ(item.at("version"), 1);
    EXPECT_TRUE(item.contains("updated_at"));

    auto none = get_page(client, "customer_id=nobody", std::nullopt);
    EXPECT_TRUE(none.ids.empty());
    EXPECT_FALSE(none.next);
}

TEST(QueryApi, OrderListFiltersByStatus) {
    QueryStack stack;
    auto all = put_customer_orders(stack);
    auto client = stack.client();
    for (int s = 0; s < 3; ++s) {
        std::string status = status_of(s);
        SCOPED_TRACE(status);
        std::vector<std::string> expected;
        std::copy_if(
            all.begin(), all.end(), std::back_inserter(expected),
            [&](const std::string& id) { return status_of(std::stoi(id.substr(2))) == status; });
        auto pages = all_pages(client, "customer_id=cust-1&status=" + status + "&limit=4");
        std::vector<std::string> seen;
        for (const auto& p : pages) seen.insert(seen.end(), p.ids.begin(), p.ids.end());
        EXPECT_EQ(seen, expected);
        EXPECT_EQ(pages.size(), 4u);  // 15 orders: 4 + 4 + 4 + 3
    }
}

TEST(QueryApi, OrderListStaysStableWhenOrdersArriveBetweenPages) {
    QueryStack stack;
    auto existing = put_customer_orders(stack);
    auto client = stack.client();

    auto first = get_page(client, "customer_id=cust-1&limit=20", std::nullopt);
    ASSERT_TRUE(first.next);
    // A new order, and one whose OrderPlaced committed earlier but was projected only now.
    put_order(stack, {.order_id = "new", .placed_position = 10'000});
    put_order(stack, {.order_id = "late", .placed_position = 151});
    std::vector<std::string> seen = first.ids;
    std::optional<std::string> cursor = first.next;
    while (cursor) {
        auto page = get_page(client, "customer_id=cust-1&limit=20", cursor);
        seen.insert(seen.end(), page.ids.begin(), page.ids.end());
        cursor = page.next;
    }
    std::multiset<std::string> counted(seen.begin(), seen.end());
    for (const auto& id : existing) EXPECT_EQ(counted.count(id), 1u) << id;
    EXPECT_EQ(counted.count("new"), 0u);  // newer than the first page: on a fresh listing
    EXPECT_EQ(counted.count("late"), 1u);
    EXPECT_EQ(counted.size(), existing.size() + 1);
}

TEST(QueryApi, OrderListRefusesBadParametersAndTamperedCursors) {
    QueryStack stack;
    put_customer_orders(stack);
    auto client = stack.client();
    auto cursor = get_page(client, "customer_id=cust-1&limit=20", std::nullopt).next;
    ASSERT_TRUE(cursor);

    std::vector<std::pair<std::string, std::set<std::string>>> bad{
        {"", {"query.customer_id"}},
        {"status=pending", {"query.customer_id"}},
        {"customer_id=", {"query.customer_id"}},
        {"customer_id=a%20b", {"query.customer_id"}},
        {"customer_id=cust-1&status=shipped", {"query.status"}},
        {"customer_id=cust-1&status=", {"query.status"}},
        {"customer_id=cust-1&limit=0", {"query.limit"}},
        {"customer_id=cust-1&limit=101", {"query.limit"}},
        {"customer_id=cust-1&limit=ten", {"query.limit"}},
        {"customer_id=cust-1&limit=99999999999999999999999", {"query.limit"}},
        {"customer_id=cust-1&sort=asc", {"query.sort"}},
        {"customer_id=cust-1&cursor=", {"query.cursor"}},
        {"customer_id=cust-1&cursor=not-a-cursor", {"query.cursor"}},
        {"customer_id=cust-1&cursor=" + *cursor + "A", {"query.cursor"}},
        {"customer_id=cust-1&cursor=" + *cursor + "%3D", {"query.cursor"}},
        {"customer_id=cust-1&cursor=" + cursor->substr(1), {"query.cursor"}},
        {"customer_id=cust-1&cursor=" + cursor->substr(0, cursor->size() - 1), {"query.cursor"}},
        {"status=x&limit=0&cursor=%21",
         {"query.customer_id", "query.status", "query.limit", "query.cursor"}},
    };
    // Every single-character edit of a real cursor is refused.
    for (std::size_t i = 0; i < cursor->size(); ++i) {
        auto edited = *cursor;
        edited[i] = edited[i] == 'A' ? 'B' : 'A';
        bad.push_back({"customer_id=cust-1&cursor=" + edited, {"query.cursor"}});
    }
    for (const auto& [query, fields] : bad) {
        SCOPED_TRACE(query);
        auto res = client.get("/v1/orders?" + query);
        EXPECT_TRUE(is_problem(res, 422, "validation_failed"));
        EXPECT_EQ(error_fields(res), fields);
    }
}

// --- traces ------------------------------------------------------------------------------

TEST(QueryApi, TraceEventsComeInCommitOrder) {
    QueryStack stack;
    const std::string trace = "0af7651916cd43dd8448eb211c80319c";
    // Inserted out of order; transaction 10 committed after 9, although its events got the
    // smaller positions, and 100 sorts before 9 as text.
    put_trace_event(stack, {trace, 10, 5, "inventory-sku-1", 2, "StockReserved", "cmd-2"});
    put_trace_event(stack, {trace, 100, 1, "account-acct-1", 3, "PaymentAuthorized", "cmd-3"});
    put_trace_event(stack, {trace, 9, 7, "order-o-1", 1, "OrderPlaced"});
    put_trace_event(stack, {trace, 10, 3, "inventory-sku-1", 1, "StockReserved", "cmd-1"});
    put_trace_event(stack,
                    {"1af7651916cd43dd8448eb211c80319c", 9, 8, "order-o-2", 1, "OrderPlaced"});

    auto res = stack.client().get("/v1/traces/" + trace);
    ASSERT_TRUE(is_ok(res));
    auto body = res.json();
    EXPECT_EQ(body.at("trace_id"), trace);
    std::vector<std::string> positions;
    for (const auto& e : body.at("events")) positions.push_back(e.at("position"));
    EXPECT_EQ(positions, (std::vector<std::string>{"9.7", "10.3", "10.5", "100.1"}));
    EXPECT_EQ(body.at("events").at(0), (json{{"stream", "order-o-1"},
                                             {"version", 1},
                                             {"type", "OrderPlaced"},
                                             {"position", "9.7"},
                                             {"recorded_at", "2024-05-01T10:00:00.000000Z"},
                                             {"causation_id", nullptr},
                                             {"correlation_id", "corr-1"}}));
    EXPECT_EQ(body.at("events").at(1).at("causation_id"), "cmd-1");
}

// --- projection progress -----------------------------------------------------------------

TEST(QueryApi, AdminProjectionsListsEveryPartitionWithItsCheckpoint) {
    QueryStack stack;
    stack.set_checkpoint("orders", 1, {12, 40});
    stack.set_checkpoint("orders", 0, {11, 30});
    stack.set_checkpoint("inventory", 0, {7, 3});
    stack.fixtures().transact([](auto& tx) {
        tx.exec(
            "UPDATE ordo.projection_checkpoints SET owner = 'projector-a', "
            "last_event_at = now() - interval '90 seconds' "
            "WHERE projection = 'orders' AND partition = 1");
    });

    auto res = stack.client().get("/v1/admin/projections");
    ASSERT_TRUE(is_ok(res));
    auto list = res.json().at("projections");
    ASSERT_EQ(list.size(), 3u);
    EXPECT_EQ(list[0].at("projection"), "inventory");
    EXPECT_EQ(list[0].at("checkpoint"), "7.3");
    EXPECT_TRUE(list[0].at("owner").is_null());
    EXPECT_TRUE(list[0].at("lag_seconds").is_null());
    EXPECT_EQ(list[1].at("projection"), "orders");
    EXPECT_EQ(list[1].at("partition"), 0);
    EXPECT_EQ(list[1].at("checkpoint"), "11.30");
    EXPECT_EQ(list[2].at("partition"), 1);
    EXPECT_EQ(list[2].at("checkpoint"), "12.40");
    EXPECT_EQ(list[2].at("owner"), "projector-a");
    ASSERT_TRUE(list[2].at("lag_seconds").is_number());
    EXPECT_GE(list[2].at("lag_seconds").get<double>(), 90.0);
    EXPECT_TRUE(list[2].at("updated_at").is_string());
}

// --- read-your-writes --------------------------------------------------------------------

TEST(QueryApi, ConsistencyTokenAlreadyPassedAnswersAtOnce) {
    QueryStack stack;
    put_order(stack, {.order_id = "o-1"});
    stack.set_checkpoints("orders", {20, 50});
    auto client = stack.client();
    for (const char* token : {"20.50", "20.49", "19.900", "0.0"}) {
        SCOPED_TRACE(token);
        EXPECT_TRUE(is_ok(client.get("/v1/orders/o-1?wait_ms=0", token_header(token))));
        // A wait beyond the cap is cut to it, not refused.
        EXPECT_TRUE(is_ok(
            client.get("/v1/orders/o-1?wait_ms=99999999999999999999999", token_header(token))));
        EXPECT_TRUE(
            is_ok(client.get("/v1/orders?customer_id=cust-1&wait_ms=0", token_header(token))));
    }
}

TEST(QueryApi, ConsistencyTokenComparesPositionsNotText) {
    QueryStack stack;
    put_order(stack, {.order_id = "o-1"});
    stack.set_checkpoints("orders", {10, 5});
    auto client = stack.client();
    // As text "10.5" < "9.99"; as a position transaction 10 is past 9.
    EXPECT_TRUE(is_ok(client.get("/v1/orders/o-1?wait_ms=0", token_header("9.99"))));
    // Same transaction, a later position: not yet.
    EXPECT_TRUE(is_problem(client.get("/v1/orders/o-1?wait_ms=0", token_header("10.6")), 503,
                           "projection_lagging"));
}

TEST(QueryApi, ConsistencyTokenFromTheFutureIsProjectionLagging) {
    QueryStack stack;
    put_order(stack, {.order_id = "o-1"});
    put_inventory(stack, "sku-1", 1, 0, 1);
    stack.set_checkpoints("orders", {5, 5});
    auto client = stack.client();

    auto res = client.get("/v1/orders/o-1?wait_ms=200", token_header("1000.1"));
    EXPECT_TRUE(is_problem(res, 503, "projection_lagging"));
    EXPECT_EQ(res.header("retry-after"), "1");
    EXPECT_TRUE(
        is_problem(client.get("/v1/orders?customer_id=cust-1&wait_ms=200", token_header("1000.1")),
                   503, "projection_lagging"));
    // No checkpoint row at all: nothing processed yet.
    EXPECT_TRUE(is_problem(client.get("/v1/inventory/sku-1?wait_ms=100", token_header("1.1")), 503,
                           "projection_lagging"));
    // Without a token the same read is answered from whatever is there.
    EXPECT_TRUE(is_ok(client.get("/v1/inventory/sku-1")));
}

TEST(QueryApi, ParkedWaitsHoldNoWorkerAreBoundedAndOtherReadsStillAnswer) {
    // Two workers, and sixteen times as many parked waits: a wait that held a worker would
    // leave nothing to answer the other reads below. A queue shorter than the parked
    // requests: all of them passing at once must still be answered.
    constexpr std::size_t kMaxWaiting = 32;
    platform::http::ServerOptions options;
    options.worker_threads = 2;
    options.max_queued = 2;
    QueryStack stack{options, std::nullopt, kMaxWaiting};
    put_order(stack, {.order_id = "o-1"});
    stack.set_checkpoints("orders", {5, 5});
    // The most requests that may wait, for a token the projection has not reached.
    // They arrive one by one (the short queue would refuse a burst of new requests).
    std::vector<std::future<HttpResponse>> waiting;
    for (std::size_t i = 0; i < kMaxWaiting; ++i) {
        waiting.push_back(std::async(std::launch::async, [&] {
            return stack.client().get("/v1/orders/o-1?wait_ms=10000", token_header("50.1"));
        }));
        ASSERT_TRUE(eventually([&] { return stack.service().waiting() == i + 1; }, 30s));
    }
    auto client = stack.client();
    // One more that would wait is told to come back, at once.
    auto refused = client.get("/v1/orders/o-1?wait_ms=10000", token_header("50.1"));
    EXPECT_TRUE(is_problem(refused, 503, "unavailable"));
    EXPECT_EQ(refused.header("retry-after"), "1");
    // Reads that need no wait are answered, by the two workers: without a token, with one
    // already passed, and many of them.
    for (int i = 0; i < 20; ++i) {
        EXPECT_TRUE(is_ok(client.get("/v1/orders/o-1")));
        EXPECT_TRUE(is_ok(client.get("/v1/orders/o-1", token_header("5.5"))));
    }
    EXPECT_EQ(stack.service().waiting(), kMaxWaiting);
    // The projection passes the token: every parked request is answered from the read model.
    stack.set_checkpoints("orders", {60, 1});
    for (auto& w : waiting) {
        auto res = w.get();
        EXPECT_TRUE(is_ok(res));
        EXPECT_EQ(json::parse(res.body).at("order_id"), "o-1");
    }
    EXPECT_EQ(stack.service().waiting(), 0U);
}

TEST(QueryApi, AParkedWaitOnlyForItsOwnPartitionWakesWhenThatPartitionPasses) {
    QueryStack stack;
    put_order(stack, {.order_id = "o-1"});
    const int partition = platform::partition_of(domain::order_stream("o-1"), stack.partitions());
    stack.set_checkpoints("orders", {5, 5});
    auto pending = std::async(std::launch::async, [&] {
        return stack.client().get("/v1/orders/o-1?wait_ms=10000", token_header("50.1"));
    });
    ASSERT_TRUE(eventually([&] { return stack.service().waiting() == 1; }, 30s));
    // Every other partition passes: once the watch has looked twice since, the wait goes on.
    for (int p = 0; p < stack.partitions(); ++p) {
        if (p != partition) stack.set_checkpoint("orders", p, {60, 1});
    }
    const auto polls = stack.service().consistency_polls();
    ASSERT_TRUE(eventually([&] { return stack.service().consistency_polls() >= polls + 2; }, 30s));
    EXPECT_EQ(stack.service().waiting(), 1U);
    EXPECT_EQ(pending.wait_for(0s), std::future_status::timeout);
    stack.set_checkpoint("orders", partition, {60, 1});
    EXPECT_TRUE(is_ok(pending.get()));
}

TEST(QueryApi, AParkedWaitWakesOnTheProjectorsNotificationNotItsNextPoll) {
    QueryStack stack;
    // Polling once a minute: within the test only the notification can wake the wait.
    query::ProgressWatch watch{stack.reader(), stack.partitions(), 8,
                               platform::Logger::null_logger(), 60s};
    stack.set_checkpoints("orders", {5, 5});
    std::atomic<int> outcome{-1};
    ASSERT_TRUE(
        watch.park({"orders", 1}, Checkpoint{50, 1}, std::chrono::steady_clock::now() + 10min,
                   [&](query::ProgressWatch::Outcome o) { outcome = static_cast<int>(o); }));
    ASSERT_TRUE(eventually([&] { return watch.polls() == 1; }, 30s));
    stack.set_checkpoint("orders", 1, {60, 1});
    eventstore::AppendNotifier projector{stack.database().projector_url(),
                                         platform::Logger::null_logger(),
                                         eventstore::AppendNotifier::kProgressChannel};
    // Sent until heard: the watch's listener may still be connecting.
    EXPECT_TRUE(eventually(
        [&] {
            projector.signal();
            return outcome == static_cast<int>(query::ProgressWatch::Outcome::passed);
        },
        30s));
}

TEST(QueryApi, ConsistencyTokenWaitsForTheProjectionToCatchUp) {
    QueryStack stack;
    put_order(stack, {.order_id = "o-1", .version = 1});
    stack.set_checkpoints("orders", {5, 5});
    std::exception_ptr failure;
    std::thread projector{[&] {
        // The deliberate delay: the GET below is meant to be waiting when this lands.
        std::this_thread::sleep_for(300ms);
        try {
            put_order(stack, {.order_id = "o-1", .status = "confirmed", .version = 2});
            stack.set_checkpoint("orders", partition_of_order(stack, "o-1"), {60, 1});
        } catch (...) {
            failure = std::current_exception();
        }
    }};
    auto res = stack.client().get("/v1/orders/o-1?wait_ms=10000", token_header("50.1"));
    projector.join();
    ASSERT_FALSE(failure);
    ASSERT_TRUE(is_ok(res));
    EXPECT_EQ(res.json().at("status"), "confirmed");
    EXPECT_EQ(res.json().at("version"), 2);
}

TEST(QueryApi, SingleResourcesWaitForTheirPartitionListsForAll) {
    QueryStack stack;
    put_order(stack, {.order_id = "o-1"});
    const int own = partition_of_order(stack, "o-1");
    for (int p = 0; p < stack.partitions(); ++p) {
        stack.set_checkpoint("orders", p, p == own ? Checkpoint{30, 1} : Checkpoint{5, 1});
    }
    auto client = stack.client();
    const auto token = token_header("20.1");
    // The order's partition has passed; the others do not matter for it...
    EXPECT_TRUE(is_ok(client.get("/v1/orders/o-1?wait_ms=0", token)));
    // ...but the list reads every partition.
    EXPECT_TRUE(is_problem(client.get("/v1/orders?customer_id=cust-1&wait_ms=50", token), 503,
                           "projection_lagging"));
    // Another projection's progress is not the orders projection's.
    stack.set_checkpoints("inventory", {99, 1});
    EXPECT_TRUE(is_problem(client.get("/v1/orders?customer_id=cust-1&wait_ms=0", token), 503,
                           "projection_lagging"));
    stack.set_checkpoints("orders", {30, 1});
    EXPECT_TRUE(is_ok(client.get("/v1/orders?customer_id=cust-1&wait_ms=0", token)));

    // The other routes read their own projections.
    put_inventory(stack, "sku-1", 1, 0, 1);
    put_account(stack, "acct-1", 1, 0, 1);
    put_saga(stack, "o-1", "running", 1);
    put_trace_event(stack,
                    {"0af7651916cd43dd8448eb211c80319c", 9, 7, "order-o-1", 1, "OrderPlaced"});
    const std::vector<std::pair<std::string, std::string>> routes{
        {"/v1/accounts/acct-1", "accounts"},
        {"/v1/sagas/o-1", "sagas"},
        {"/v1/traces/0af7651916cd43dd8448eb211c80319c", "traces"},
    };
    EXPECT_TRUE(is_ok(client.get("/v1/inventory/sku-1?wait_ms=0", token)));
    for (const auto& [target, projection] : routes) {
        SCOPED_TRACE(target);
        EXPECT_TRUE(
            is_problem(client.get(target + "?wait_ms=0", token), 503, "projection_lagging"));
        stack.set_checkpoints(projection, {30, 1});
        EXPECT_TRUE(is_ok(client.get(target + "?wait_ms=0", token)));
    }
    // Progress itself reads no projection: nothing to wait for.
    EXPECT_TRUE(is_ok(client.get("/v1/admin/projections", token_header("999999.1"))));
}

// --- the query role, authentication, availability ---------------------------------------

// Of the event store it sees the events alone (the events API), and changes nothing.
TEST(QueryApi, ServiceRunsOnTheReaderRoleThatSeesOnlyTheEventsOfTheEventStore) {
    QueryStack stack;
    auto sqlstate_of = [&](const std::string& sql) {
        try {
            stack.reader().transact<pqxx::nontransaction>([&](auto& tx) { tx.exec(sql); });
        } catch (...) {
            return platform::pg::sqlstate_of(std::current_exception());
        }
        return std::string{"none"};
    };
    EXPECT_EQ(sqlstate_of("SELECT count(*) FROM ordo.events"), "none");
    EXPECT_EQ(sqlstate_of("SELECT count(*) FROM ordo.streams"), "42501");
    EXPECT_EQ(sqlstate_of("SELECT count(*) FROM ordo.command_log"), "42501");
    EXPECT_EQ(sqlstate_of("SELECT count(*) FROM ordo.projection_checkpoints"), "42501");
    // Read-only even where it can read.
    EXPECT_EQ(sqlstate_of("DELETE FROM read.orders"), "25006");
    EXPECT_EQ(sqlstate_of("SELECT count(*) FROM read.projection_progress"), "none");
    // Not even in a read-write transaction may it change a dead letter: requests about them
    // are the Command API's.
    EXPECT_EQ(sqlstate_of("BEGIN READ WRITE; UPDATE read.dead_letters SET status = "
                          "'skip_requested'; COMMIT"),
              "42501");
}

TEST(QueryApi, TokensGuardTheQueryRoutes) {
    platform::http::ServerOptions options;
    options.tokens = testing::token_set({{"dashboard", "read", "secret"}});
    QueryStack stack{options};
    put_order(stack, {.order_id = "o-1"});
    auto client = stack.client();
    for (const HttpHeaders& headers : std::vector<HttpHeaders>{
             {}, {{"Authorization", "Bearer wrong"}}, {{"Authorization", "Basic c2VjcmV0"}}}) {
        SCOPED_TRACE(headers.empty() ? "no token" : headers[0].second);
        for (const char* target :
             {"/v1/orders/o-1", "/v1/orders?customer_id=cust-1", "/v1/admin/projections",
              "/v1/orders/bad%20id", "/%761/orders/o-1", "/%76%31/orders/o-1", "/v%31/orders/o-1",
              "//v1/orders/o-1", "/v1/./orders/o-1", "/v1/../v1/orders/o-1", "/V1/orders/o-1",
              "/v1/orders/o%2D1", "/v1/orders%2Fo-1", "/v1/admin/%2e%2e/orders",
              "/v1/admin/dead-letters"}) {
            EXPECT_TRUE(is_problem(client.get(target, headers), 401, "unauthorized")) << target;
        }
    }
    EXPECT_TRUE(is_ok(client.get("/v1/orders/o-1", testing::bearer("secret"))));
}

TEST(QueryApi, EachScopeReachesOnlyItsOwnRoutes) {
    platform::http::ServerOptions options;
    options.tokens = testing::token_set({{"dashboard", "read", "read-token"},
                                         {"operator", "admin", "admin-token"},
                                         {"loader", "commands", "command-token"}});
    QueryStack stack{options};
    put_order(stack, {.order_id = "o-1"});
    auto client = stack.client();
    const std::vector<std::string> reads{"/v1/orders/o-1",      "/v1/orders?customer_id=cust-1",
                                         "/v1/inventory/sku-1", "/v1/accounts/acct-1",
                                         "/v1/sagas/o-1",       "/%761/orders/o-1"};
    const std::vector<std::string> admin{"/v1/admin/projections", "/v1/admin/dead-letters"};
    auto status = [&](const std::string& target, const std::string& token) {
        return client.get(target, testing::bearer(token)).status;
    };
    for (const auto& target : reads) {
        SCOPED_TRACE(target);
        EXPECT_TRUE(
            is_problem(client.get(target, testing::bearer("command-token")), 403, "forbidden"));
        EXPECT_TRUE(
            is_problem(client.get(target, testing::bearer("admin-token")), 403, "forbidden"));
        const int read = status(target, "read-token");
        EXPECT_TRUE(read == 200 || read == 404) << read;  // the route itself answered
    }
    for (const auto& target : admin) {
        SCOPED_TRACE(target);
        EXPECT_TRUE(
            is_problem(client.get(target, testing::bearer("read-token")), 403, "forbidden"));
        EXPECT_TRUE(
            is_problem(client.get(target, testing::bearer("command-token")), 403, "forbidden"));
        EXPECT_EQ(status(target, "admin-token"), 200);
    }
    // Writes to dead letters are administration, whoever reads.
    auto retry =
        client.request("POST", "/v1/admin/dead-letters/1/retry", "", testing::bearer("read-token"));
    EXPECT_TRUE(is_problem(retry, 403, "forbidden"));
}

TEST(QueryApi, UnreachableDatabaseIsUnavailable) {
    QueryStack stack{{}, "postgresql://ordo_query:none@127.0.0.1:1/ordo?connect_timeout=2"};
    auto client = stack.client();
    for (const char* target :
         {"/v1/orders/o-1", "/v1/orders?customer_id=cust-1", "/v1/admin/projections"}) {
        SCOPED_TRACE(target);
        auto res = client.get(target);
        EXPECT_TRUE(is_problem(res, 503, "unavailable"));
        EXPECT_EQ(res.header("retry-after"), "1");
    }
    auto waiting = client.get("/v1/orders/o-1", token_header("1.1"));
    EXPECT_TRUE(is_problem(waiting, 503, "unavailable"));
}

}  // namespace
}  // namespace ordo
