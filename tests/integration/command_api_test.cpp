// The Command API over HTTP against a real PostgreSQL: appends, validation, limits, idempotency
// keys, concurrency, pool bounds, tokens and scopes.

#include <gtest/gtest.h>

#include <cstdint>
#include <exception>
#include <latch>
#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <typeinfo>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "command/executor.hpp"
#include "command/service.hpp"
#include "domain/commands.hpp"
#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "platform/core/trace.hpp"
#include "tests/support/command_stack.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/problem.hpp"
#include "tests/support/tokens.hpp"

// The Command API of docs/API.md, over HTTP against the command service wired as in
// production, and its in-process command bus. Every test has a stack and a database of its own.
namespace ordo {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;
using testing::CommandStack;
using testing::error_fields;
using testing::eventually;
using testing::HttpClient;
using testing::HttpHeaders;
using testing::HttpResponse;
using testing::is_problem;
using testing::scalar;

constexpr const char* kTraceId = "0af7651916cd43dd8448eb211c80319c";
constexpr const char* kTraceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

// --- the command bus's outcomes ----------------------------------------------------------

// A bus outcome as these tests read it: where a decided command landed and its rejection,
// if any. A transient failure or a command not started is thrown as a std::runtime_error,
// so the tests count it with every other failure.
struct BusAnswer {
    std::optional<domain::Rejection> rejection;
    std::string stream;
    std::int64_t version = 0;
    std::string position;
    bool replayed = false;
};

BusAnswer answer(const domain::CommandOutcome& outcome) {
    auto decided = [](const domain::CommandReceipt& r, std::optional<domain::Rejection> no) {
        return BusAnswer{std::move(no), r.stream, r.version, r.position, r.replayed};
    };
    if (const auto* ok = std::get_if<domain::CommandSucceeded>(&outcome)) {
        return decided(ok->receipt, std::nullopt);
    }
    if (const auto* no = std::get_if<domain::CommandRejected>(&outcome)) {
        return decided(no->receipt, no->reason);
    }
    if (const auto* failed = std::get_if<domain::CommandFailed>(&outcome)) {
        throw std::runtime_error("failed: " + failed->message);
    }
    throw std::runtime_error("not sent: " + std::get<domain::CommandNotSent>(outcome).message);
}

// --- requests and responses --------------------------------------------------------------

HttpResponse post_raw(HttpClient& client, const std::string& target, std::string body,
                      const std::string& content_type = "application/json",
                      HttpHeaders headers = {}) {
    if (!content_type.empty()) headers.emplace_back("Content-Type", content_type);
    return client.request("POST", target, std::move(body), std::move(headers));
}

HttpResponse post_traced(HttpClient& client, const std::string& target, const json& body) {
    return client.post_json(target, body, {{"traceparent", kTraceparent}});
}

std::string trace_id_of(const std::string& traceparent) {
    // version-traceid-spanid-flags
    auto first = traceparent.find('-');
    if (first == std::string::npos) return {};
    return traceparent.substr(first + 1, 32);
}

// A successful command answer: its status, JSON body, stream, version and a position.
::testing::AssertionResult is_accepted(const HttpResponse& res, int status,
                                       const std::string& stream, std::int64_t version) {
    auto failure = ::testing::AssertionFailure();
    failure << "HTTP " << res.status << " " << res.body << ": ";
    if (res.status != status) return failure << "expected status " << status;
    if (res.header("content-type") != "application/json") {
        return failure << "content-type is '" << res.header("content-type") << "'";
    }
    json body;
    try {
        body = res.json();
    } catch (const std::exception& e) {
        return failure << "body is not JSON: " << e.what();
    }
    if (body.value("stream", "") != stream) return failure << "expected stream " << stream;
    if (body.value("version", std::int64_t{-1}) != version) {
        return failure << "expected version " << version;
    }
    if (!body.contains("position") || !body["position"].is_string() ||
        body["position"].get<std::string>().empty()) {
        return failure << "no position";
    }
    return ::testing::AssertionSuccess();
}

// --- the event store ---------------------------------------------------------------------

struct StoredEvent {
    std::string stream;
    std::int64_t version = 0;
    std::string type;
    json payload;
    json metadata;
};

std::vector<StoredEvent> stored_events(CommandStack& stack, const std::string& stream) {
    return stack.pool().transact<pqxx::nontransaction>([&](auto& tx) {
        std::vector<StoredEvent> events;
        auto rows = tx.exec_params(
            "SELECT stream_id, stream_version, event_type, payload::text, metadata::text "
            "FROM ordo.events WHERE stream_id = $1 ORDER BY stream_version",
            stream);
        for (const auto& row : rows) {
            events.push_back({row[0].template as<std::string>(), row[1].template as<std::int64_t>(),
                              row[2].template as<std::string>(),
                              json::parse(row[3].template as<std::string>()),
                              json::parse(row[4].template as<std::string>())});
        }
        return events;
    });
}

void expect_traced_command(const StoredEvent& event) {
    EXPECT_EQ(event.metadata.value("trace_id", ""), kTraceId) << event.metadata.dump();
    EXPECT_FALSE(event.metadata.value("command_id", "").empty()) << event.metadata.dump();
}

// --- the command bus ---------------------------------------------------------------------

command::CommandContext saga_context() {
    return {platform::new_trace(), "saga-test", "saga-test", "", "saga"};
}

// --- bad requests ------------------------------------------------------------------------

struct BadRequest {
    std::string what;
    std::string target;
    std::string body;
    int status = 422;
    std::string type = "validation_failed";
    std::set<std::string> fields{};  // the fields named in `errors`, for validation_failed
    std::string content_type = "application/json";
    HttpHeaders headers{};
};

// Bad requests to one target, one line each.
struct BadRequestsTo {
    std::string target;

    BadRequest malformed(std::string what, std::string body) const {
        return {std::move(what), target, std::move(body), 400, "malformed_json"};
    }
    BadRequest invalid(std::string what, std::string body, std::set<std::string> fields,
                       HttpHeaders headers = {}) const {
        BadRequest bad{std::move(what), target, std::move(body)};
        bad.fields = std::move(fields);
        bad.headers = std::move(headers);
        return bad;
    }
    BadRequest media_type(std::string what, std::string body, std::string content_type) const {
        BadRequest bad{std::move(what), target, std::move(body), 415, "unsupported_media_type"};
        bad.content_type = std::move(content_type);
        return bad;
    }
};

// Each request is refused with its documented problem, and none of them appends anything.
void expect_refused_without_effect(CommandStack& stack, const std::vector<BadRequest>& requests) {
    auto client = stack.client();
    const auto before = stack.event_count();
    for (const auto& bad : requests) {
        SCOPED_TRACE(bad.what);
        auto res = post_raw(client, bad.target, bad.body, bad.content_type, bad.headers);
        EXPECT_TRUE(is_problem(res, bad.status, bad.type));
        if (bad.type == "validation_failed") {
            EXPECT_EQ(error_fields(res), bad.fields) << res.body;
        }
        EXPECT_EQ(stack.event_count(), before);
    }
}

const std::string kTooLongId(65, 'a');
constexpr const char* kTooBigForInt64 = "99999999999999999999";

json order_body(
    const std::string& order_id,
    json lines = json::array({{{"sku", "sku-1"}, {"quantity", 2}, {"unit_price", 150}}})) {
    json body = {{"customer_id", "cust-1"}, {"account_id", "acc-1"}, {"lines", std::move(lines)}};
    if (!order_id.empty()) body["order_id"] = order_id;
    return body;
}

// Places a pending order over HTTP.
void place_order(CommandStack& stack, const std::string& order_id) {
    auto client = stack.client();
    auto res = client.post_json("/v1/orders", order_body(order_id));
    ASSERT_EQ(res.status, 202) << res.body;
}

// --- success: every route ----------------------------------------------------------------

TEST(CommandApi, ReceiptsAppendStockReceivedAndCountTheVersionUp) {
    CommandStack stack;
    auto client = stack.client();
    std::set<std::string> positions;
    const std::vector<std::int64_t> quantities = {5, 7, 1'000'000};
    for (std::size_t i = 0; i < quantities.size(); ++i) {
        auto res =
            post_traced(client, "/v1/inventory/sku-1/receipts", {{"quantity", quantities[i]}});
        ASSERT_TRUE(is_accepted(res, 200, "inventory-sku-1", static_cast<std::int64_t>(i) + 1));
        EXPECT_EQ(trace_id_of(res.header("traceparent")), kTraceId) << res.header("traceparent");
        positions.insert(res.json()["position"].get<std::string>());
    }
    EXPECT_EQ(positions.size(), 3u) << "every append has a position of its own";

    auto events = stored_events(stack, "inventory-sku-1");
    ASSERT_EQ(events.size(), 3u);
    std::set<std::string> command_ids;
    for (std::size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].version, static_cast<std::int64_t>(i) + 1);
        EXPECT_EQ(events[i].type, "StockReceived");
        EXPECT_EQ(events[i].payload, json({{"sku", "sku-1"}, {"quantity", quantities[i]}}));
        expect_traced_command(events[i]);
        command_ids.insert(events[i].metadata.value("command_id", ""));
    }
    EXPECT_EQ(command_ids.size(), 3u) << "each request is a command of its own";
    EXPECT_EQ(stack.event_count(), 3);
}

TEST(CommandApi, DepositsAppendFundsDepositedAndCountTheVersionUp) {
    CommandStack stack;
    auto client = stack.client();
    std::set<std::string> positions;
    const std::vector<std::int64_t> amounts = {1, 250, 1'000'000'000'000};
    for (std::size_t i = 0; i < amounts.size(); ++i) {
        auto res = post_traced(client, "/v1/accounts/acc-1/deposits", {{"amount", amounts[i]}});
        ASSERT_TRUE(is_accepted(res, 200, "account-acc-1", static_cast<std::int64_t>(i) + 1));
        EXPECT_EQ(trace_id_of(res.header("traceparent")), kTraceId) << res.header("traceparent");
        positions.insert(res.json()["position"].get<std::string>());
    }
    EXPECT_EQ(positions.size(), 3u);

    auto events = stored_events(stack, "account-acc-1");
    ASSERT_EQ(events.size(), 3u);
    for (std::size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].version, static_cast<std::int64_t>(i) + 1);
        EXPECT_EQ(events[i].type, "FundsDeposited");
        EXPECT_EQ(events[i].payload, json({{"account_id", "acc-1"}, {"amount", amounts[i]}}));
        expect_traced_command(events[i]);
    }
}

TEST(CommandApi, PlaceOrderAppendsOrderPlacedWithItsTotal) {
    CommandStack stack;
    auto client = stack.client();
    json lines = json::array({{{"sku", "sku-1"}, {"quantity", 2}, {"unit_price", 150}},
                              {{"sku", "sku-2"}, {"quantity", 10'000}, {"unit_price", 0}},
                              {{"sku", "sku-3"}, {"quantity", 3}, {"unit_price", 100'000'000}}});
    auto res = post_traced(client, "/v1/orders", order_body("order-1", lines));
    ASSERT_TRUE(is_accepted(res, 202, "order-order-1", 1));
    EXPECT_EQ(res.json()["order_id"], "order-1");
    EXPECT_EQ(trace_id_of(res.header("traceparent")), kTraceId);

    auto events = stored_events(stack, "order-order-1");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "OrderPlaced");
    // Stored in version 2's shape: the request's integer prices in the default currency.
    json stored_lines = lines;
    for (auto& line : stored_lines) {
        line["unit_price"] = {{"amount", line["unit_price"]}, {"currency", "EUR"}};
    }
    EXPECT_EQ(events[0].payload, json({{"order_id", "order-1"},
                                       {"customer_id", "cust-1"},
                                       {"account_id", "acc-1"},
                                       {"lines", stored_lines},
                                       {"total", 2 * 150 + 3 * 100'000'000}}));
    expect_traced_command(events[0]);
}

TEST(CommandApi, PlaceOrderGeneratesAnOrderIdWhenNoneIsGiven) {
    CommandStack stack;
    auto client = stack.client();
    auto first = post_traced(client, "/v1/orders", order_body(""));
    auto second = post_traced(client, "/v1/orders", order_body(""));
    ASSERT_EQ(first.status, 202) << first.body;
    ASSERT_EQ(second.status, 202) << second.body;
    auto id = first.json().value("order_id", "");
    EXPECT_EQ(id.size(), 36u) << id;  // a UUID
    EXPECT_NE(id, second.json().value("order_id", ""));
    EXPECT_TRUE(is_accepted(first, 202, "order-" + id, 1));

    auto events = stored_events(stack, "order-" + id);
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].type, "OrderPlaced");
    EXPECT_EQ(events[0].payload["order_id"], id);
    EXPECT_EQ(stack.event_count(), 2);
}

TEST(CommandApi, CancelRecordsTheCustomersRequestWhilePending) {
    CommandStack stack;
    place_order(stack, "order-1");
    place_order(stack, "order-2");
    auto client = stack.client();

    auto res = post_traced(client, "/v1/orders/order-1/cancel", {{"reason", "changed my mind"}});
    ASSERT_TRUE(is_accepted(res, 202, "order-order-1", 2));
    EXPECT_EQ(res.json()["order_id"], "order-1");
    EXPECT_EQ(trace_id_of(res.header("traceparent")), kTraceId);
    auto events = stored_events(stack, "order-order-1");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1].type, "OrderCancellationRequested");
    EXPECT_EQ(events[1].payload, json({{"order_id", "order-1"}, {"reason", "changed my mind"}}));
    expect_traced_command(events[1]);

    // Asking again while the saga has not answered yet is still accepted, and appends nothing.
    const auto before = stack.event_count();
    auto again = post_traced(client, "/v1/orders/order-1/cancel", {{"reason", "really"}});
    EXPECT_TRUE(is_accepted(again, 202, "order-order-1", 2));
    EXPECT_EQ(stack.event_count(), before);

    // The body is optional.
    auto bare =
        client.request("POST", "/v1/orders/order-2/cancel", "", {{"traceparent", kTraceparent}});
    ASSERT_TRUE(is_accepted(bare, 202, "order-order-2", 2));
    auto bare_events = stored_events(stack, "order-order-2");
    ASSERT_EQ(bare_events.size(), 2u);
    EXPECT_EQ(bare_events[1].type, "OrderCancellationRequested");
    EXPECT_EQ(bare_events[1].payload, json({{"order_id", "order-2"}, {"reason", ""}}));
}

TEST(CommandApi, StartsATraceWhenTheClientSendsNone) {
    CommandStack stack;
    auto client = stack.client();
    auto res = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 1}},
                                {{"traceparent", "not-a-traceparent"}});
    ASSERT_EQ(res.status, 200) << res.body;
    auto trace_id = trace_id_of(res.header("traceparent"));
    ASSERT_EQ(trace_id.size(), 32u) << res.header("traceparent");
    auto events = stored_events(stack, "inventory-sku-1");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].metadata.value("trace_id", ""), trace_id);
}

// --- errors per route --------------------------------------------------------------------

TEST(CommandApi, PlacingAnExistingOrderIsConflict) {
    CommandStack stack;
    place_order(stack, "order-1");
    const auto before = stack.event_count();
    auto client = stack.client();
    // Even an identical body: without an Idempotency-Key it is a second order with the same id.
    auto res = client.post_json("/v1/orders", order_body("order-1"));
    EXPECT_TRUE(is_problem(res, 409, "conflict"));
    EXPECT_EQ(stack.event_count(), before);
}

TEST(CommandApi, CancellingAConfirmedOrCancelledOrderIsConflict) {
    CommandStack stack;
    place_order(stack, "order-confirmed");
    place_order(stack, "order-cancelled");
    auto confirmed = answer(stack.service().send(
        "confirm-1", domain::orders::ConfirmOrder{"order-confirmed"}, saga_context()));
    ASSERT_FALSE(confirmed.rejection) << confirmed.rejection->code;
    auto cancelled = answer(stack.service().send(
        "cancel-1", domain::orders::CancelOrder{"order-cancelled", "insufficient_stock"},
        saga_context()));
    ASSERT_FALSE(cancelled.rejection) << cancelled.rejection->code;
    const auto before = stack.event_count();
    ASSERT_EQ(before, 4);

    auto client = stack.client();
    EXPECT_TRUE(is_problem(client.post_json("/v1/orders/order-confirmed/cancel", json::object()),
                           409, "conflict"));
    EXPECT_TRUE(is_problem(client.post_json("/v1/orders/order-cancelled/cancel", json::object()),
                           409, "conflict"));
    EXPECT_EQ(stack.event_count(), before);
}

TEST(CommandApi, CancellingAnUnknownOrderIsNotFound) {
    CommandStack stack;
    auto client = stack.client();
    EXPECT_TRUE(is_problem(client.post_json("/v1/orders/order-nobody/cancel", json::object()), 404,
                           "not_found"));
    EXPECT_EQ(stack.event_count(), 0);
}

TEST(CommandApi, CancelHonoursIfMatch) {
    CommandStack stack;
    place_order(stack, "order-1");
    auto client = stack.client();
    const auto before = stack.event_count();

    for (const char* stale : {"\"0\"", "\"2\"", "\"17\""}) {
        SCOPED_TRACE(stale);
        auto res =
            client.post_json("/v1/orders/order-1/cancel", json::object(), {{"If-Match", stale}});
        EXPECT_TRUE(is_problem(res, 412, "version_mismatch"));
    }
    EXPECT_EQ(stack.event_count(), before);

    auto res =
        client.post_json("/v1/orders/order-1/cancel", json::object(), {{"If-Match", "\"1\""}});
    EXPECT_TRUE(is_accepted(res, 202, "order-order-1", 2));
    EXPECT_EQ(stack.event_count(), before + 1);
}

TEST(CommandApi, UnknownRouteIsNotFoundAndWrongMethodIsMethodNotAllowed) {
    CommandStack stack;
    auto client = stack.client();
    EXPECT_TRUE(is_problem(client.post_json("/v1/warehouses/w-1/receipts", {{"quantity", 1}}), 404,
                           "not_found"));
    EXPECT_TRUE(
        is_problem(client.post_json("/v1/inventory/sku-1", {{"quantity", 1}}), 404, "not_found"));
    EXPECT_TRUE(is_problem(client.get("/v1/nothing-here"), 404, "not_found"));

    for (const char* method : {"GET", "PUT", "DELETE"}) {
        SCOPED_TRACE(method);
        auto res = client.request(method, "/v1/inventory/sku-1/receipts", "{\"quantity\":1}",
                                  {{"Content-Type", "application/json"}});
        EXPECT_TRUE(is_problem(res, 405, "method_not_allowed"));
        EXPECT_EQ(res.header("allow"), "POST");
    }
    auto res = client.get("/v1/orders/order-1/cancel");
    EXPECT_TRUE(is_problem(res, 405, "method_not_allowed"));
    EXPECT_EQ(res.header("allow"), "POST");
    EXPECT_EQ(stack.event_count(), 0);
}

// --- bad input, route by route -----------------------------------------------------------

TEST(CommandApi, ReceiptRefusesBadInputAndAppendsNothing) {
    CommandStack stack;
    const BadRequestsTo receipt{"/v1/inventory/sku-1/receipts"};
    const std::string nested = std::string(40, '[') + std::string(40, ']');
    const std::string beyond_int64 = std::string{R"({"quantity":)"} + kTooBigForInt64 + "}";
    const std::string good = R"({"quantity":1})";
    const std::set<std::string> quantity = {"quantity"};
    const std::vector<BadRequest> requests = {
        receipt.malformed("malformed JSON", R"({"quantity": )"),
        receipt.malformed("not an object", "[1]"),
        receipt.malformed("empty body", ""),
        receipt.malformed("nested too deep", R"({"quantity":)" + nested + "}"),
        // Found by fuzzing: a number beyond a double made the parser throw past its catch.
        receipt.malformed("number beyond a double", R"({"quantity":1e999})"),
        receipt.invalid("string quantity", R"({"quantity":"5"})", quantity),
        receipt.invalid("float quantity", R"({"quantity":1.5})", quantity),
        receipt.invalid("integral float", R"({"quantity":2.0})", quantity),
        receipt.invalid("bool quantity", R"({"quantity":true})", quantity),
        receipt.invalid("null quantity", R"({"quantity":null})", quantity),
        receipt.invalid("beyond int64", beyond_int64, quantity),
        receipt.invalid("negative", R"({"quantity":-3})", quantity),
        receipt.invalid("zero", R"({"quantity":0})", quantity),
        receipt.invalid("over the limit", R"({"quantity":1000001})", quantity),
        receipt.invalid("missing", "{}", quantity),
        receipt.invalid("unknown field", R"({"quantity":1,"colour":"red"})", {"colour"}),
        receipt.invalid("invalid Idempotency-Key", good, {"Idempotency-Key"},
                        {{"Idempotency-Key", std::string(256, 'k')}}),
        receipt.media_type("text/plain", good, "text/plain"),
        receipt.media_type("no content type", good, ""),
        receipt.media_type("json-ish content type", good, "application/jsonp"),
        BadRequestsTo{"/v1/inventory/bad%20id%21/receipts"}.invalid("invalid sku in path", good,
                                                                    {"path.sku"}),
        BadRequestsTo{"/v1/inventory/" + kTooLongId + "/receipts"}.invalid(
            "65-character sku in path", good, {"path.sku"}),
    };
    expect_refused_without_effect(stack, requests);

    // The same route takes a good request: the refusals above were about the input.
    auto client = stack.client();
    auto ok = post_raw(client, receipt.target, good, "application/json; charset=utf-8");
    EXPECT_TRUE(is_accepted(ok, 200, "inventory-sku-1", 1));
}

TEST(CommandApi, DepositRefusesBadInputAndAppendsNothing) {
    CommandStack stack;
    const BadRequestsTo deposit{"/v1/accounts/acc-1/deposits"};
    const std::string good = R"({"amount":5})";
    const std::set<std::string> amount = {"amount"};
    const std::vector<BadRequest> requests = {
        deposit.malformed("malformed JSON", R"({"amount" 5})"),
        deposit.malformed("not an object", R"("amount")"),
        deposit.invalid("string amount", R"({"amount":"10"})", amount),
        deposit.invalid("float amount", R"({"amount":10.5})", amount),
        deposit.invalid("bool amount", R"({"amount":false})", amount),
        deposit.invalid("beyond int64", std::string{R"({"amount":)"} + kTooBigForInt64 + "}",
                        amount),
        deposit.invalid("beyond int64, negative", R"({"amount":-99999999999999999999})", amount),
        deposit.invalid("negative", R"({"amount":-5})", amount),
        deposit.invalid("zero", R"({"amount":0})", amount),
        deposit.invalid("over the limit", R"({"amount":1000000000001})", amount),
        deposit.invalid("unknown field", R"({"amount":5,"currency":"EUR"})", {"currency"}),
        deposit.media_type("text/plain", good, "text/plain"),
        BadRequestsTo{"/v1/accounts/bad%20id%21/deposits"}.invalid("invalid account in path", good,
                                                                   {"path.account_id"}),
        BadRequestsTo{"/v1/accounts/" + kTooLongId + "/deposits"}.invalid(
            "65-character account in path", good, {"path.account_id"}),
    };
    expect_refused_without_effect(stack, requests);

    auto client = stack.client();
    EXPECT_TRUE(
        is_accepted(client.post_json(deposit.target, {{"amount", 5}}), 200, "account-acc-1", 1));
}

TEST(CommandApi, PlaceOrderRefusesBadInputAndAppendsNothing) {
    CommandStack stack;
    // A good order with one member changed, added or removed.
    auto with = [](const std::string& key, json value) {
        auto body = order_body("order-1");
        body[key] = std::move(value);
        return body.dump();
    };
    auto with_line = [](const std::string& key, json value) {
        auto body = order_body("order-1");
        body["lines"][0][key] = std::move(value);
        return body.dump();
    };
    auto without = [](const std::string& key) {
        auto body = order_body("order-1");
        body.erase(key);
        return body.dump();
    };
    auto line = [](const std::string& sku) {
        return json{{"sku", sku}, {"quantity", 1}, {"unit_price", 10}};
    };
    json too_many = json::array();
    for (int i = 0; i < 101; ++i) too_many.push_back(line("sku-" + std::to_string(i)));
    std::string quantity_beyond_int64 = with_line("quantity", 0);
    const std::string zero_quantity = R"("quantity":0)";
    quantity_beyond_int64.replace(quantity_beyond_int64.find(zero_quantity), zero_quantity.size(),
                                  std::string{R"("quantity":)"} + kTooBigForInt64);

    const BadRequestsTo order{"/v1/orders"};
    const std::set<std::string> quantity = {"lines[0].quantity"};
    const std::set<std::string> price = {"lines[0].unit_price"};
    const std::vector<BadRequest> requests = {
        order.malformed("malformed JSON", R"({"customer_id":"c",)"),
        order.malformed("invalid UTF-8", "{\"customer_id\":\"\xff\xfe\"}"),
        order.malformed("not an object", "null"),
        order.invalid("invalid order id", with("order_id", "bad id!"), {"order_id"}),
        order.invalid("65-character order id", with("order_id", kTooLongId), {"order_id"}),
        order.invalid("numeric customer id", with("customer_id", 5), {"customer_id"}),
        order.invalid("empty account id", with("account_id", ""), {"account_id"}),
        order.invalid("missing customer id", without("customer_id"), {"customer_id"}),
        order.invalid("missing lines", without("lines"), {"lines"}),
        order.invalid("lines not an array", with("lines", "sku-1"), {"lines"}),
        order.invalid("no lines", with("lines", json::array()), {"lines"}),
        order.invalid("101 lines", with("lines", too_many), {"lines"}),
        order.invalid("duplicated sku", with("lines", json::array({line("sku-1"), line("sku-1")})),
                      {"lines[1].sku"}),
        order.invalid("line not an object", with("lines", json::array({line("sku-1"), 7})),
                      {"lines[1]"}),
        order.invalid("invalid sku", with_line("sku", "bad id!"), {"lines[0].sku"}),
        order.invalid("string quantity", with_line("quantity", "2"), quantity),
        order.invalid("float quantity", with_line("quantity", 1.5), quantity),
        order.invalid("bool quantity", with_line("quantity", true), quantity),
        order.invalid("zero quantity", with_line("quantity", 0), quantity),
        order.invalid("negative quantity", with_line("quantity", -1), quantity),
        order.invalid("quantity over the limit", with_line("quantity", 10'001), quantity),
        order.invalid("quantity beyond int64", quantity_beyond_int64, quantity),
        order.invalid("negative price", with_line("unit_price", -1), price),
        order.invalid("price over the limit", with_line("unit_price", 100'000'001), price),
        order.invalid("unknown field", with("coupon", "FREE"), {"coupon"}),
        order.invalid("unknown line field", with_line("discount", 5), {"lines[0].discount"}),
        order.invalid(
            "everything wrong at once",
            R"({"order_id":"a b","lines":[{"sku":"s","quantity":0,"unit_price":-1,"x":1}]})",
            {"order_id", "customer_id", "account_id", "lines[0].quantity", "lines[0].unit_price",
             "lines[0].x"}),
        order.media_type("text/plain", order_body("order-1").dump(), "text/plain"),
    };
    expect_refused_without_effect(stack, requests);

    auto client = stack.client();
    EXPECT_TRUE(is_accepted(client.post_json(order.target, order_body("order-1")), 202,
                            "order-order-1", 1));
}

TEST(CommandApi, CancelRefusesBadInputAndAppendsNothing) {
    CommandStack stack;
    place_order(stack, "order-1");
    const BadRequestsTo cancel{"/v1/orders/order-1/cancel"};
    auto if_match = [](std::string value) { return HttpHeaders{{"If-Match", std::move(value)}}; };
    const std::vector<BadRequest> requests = {
        cancel.malformed("malformed JSON", R"({"reason":)"),
        cancel.malformed("not an object", "[]"),
        cancel.invalid("numeric reason", R"({"reason":5})", {"reason"}),
        cancel.invalid("reason over 200 bytes", json{{"reason", std::string(201, 'r')}}.dump(),
                       {"reason"}),
        cancel.invalid("unknown field", R"({"reason":"x","refund":true})", {"refund"}),
        cancel.invalid("unquoted If-Match", "{}", {"If-Match"}, if_match("1")),
        cancel.invalid("weak If-Match", "{}", {"If-Match"}, if_match("W/\"1\"")),
        cancel.invalid("If-Match beyond int64", "{}", {"If-Match"},
                       if_match(std::string{"\""} + kTooBigForInt64 + "\"")),
        cancel.media_type("text/plain with a body", R"({"reason":"x"})", "text/plain"),
        BadRequestsTo{"/v1/orders/bad%20id%21/cancel"}.invalid("invalid order id in path", "{}",
                                                               {"path.order_id"}),
        BadRequestsTo{"/v1/orders/" + kTooLongId + "/cancel"}.invalid(
            "65-character order id in path", "{}", {"path.order_id"}),
    };
    expect_refused_without_effect(stack, requests);

    auto client = stack.client();
    EXPECT_TRUE(is_accepted(client.post_json(cancel.target, {{"reason", std::string(200, 'r')}}),
                            202, "order-order-1", 2));
}

// The only free text a client can store is a cancel reason. JSON allows "\u0000" in it,
// PostgreSQL's jsonb does not: that is the client's mistake, so it must not be a 500.
TEST(CommandApi, CancelReasonThatCannotBeStoredIsNotAServerError) {
    CommandStack stack;
    place_order(stack, "order-1");
    const auto before = stack.event_count();
    auto client = stack.client();
    auto res = post_raw(client, "/v1/orders/order-1/cancel", R"({"reason":"a\u0000b"})");
    EXPECT_LT(res.status, 500) << res.body;
    if (res.status >= 400) {
        EXPECT_TRUE(is_problem(res, 422, "validation_failed"));
        EXPECT_EQ(error_fields(res), std::set<std::string>{"reason"}) << res.body;
        EXPECT_EQ(stack.event_count(), before);
    }
}

TEST(CommandApi, BodyOverOneMebibyteIsPayloadTooLargeAndAppendsNothing) {
    CommandStack stack;
    auto client = stack.client();
    std::string two_mib = json{{"quantity", 1}, {"note", std::string(2 << 20, 'x')}}.dump();
    auto res = post_raw(client, "/v1/inventory/sku-1/receipts", two_mib);
    EXPECT_TRUE(is_problem(res, 413, "payload_too_large"));

    // A request that announces the size gets the same answer before sending its body.
    auto reply = testing::raw_exchange(
        "127.0.0.1", stack.port(),
        "POST /v1/orders HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        "Content-Length: 2097152\r\n\r\n",
        30s);
    EXPECT_EQ(reply.rfind("HTTP/1.1 413", 0), 0u) << reply.substr(0, 300);
    EXPECT_NE(reply.find("payload_too_large"), std::string::npos);
    EXPECT_EQ(stack.event_count(), 0);
}

TEST(CommandApi, TruncatedRequestTimesOutAndAppendsNothing) {
    platform::http::ServerOptions options;
    options.read_timeout = 500ms;
    CommandStack stack{options};
    // Content-Length 100 and 10 bytes of body, then silence: the server must give up.
    const std::string head =
        "POST /v1/inventory/sku-1/receipts HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n";
    const std::string ten_bytes = "{\"quantity";
    ASSERT_EQ(ten_bytes.size(), 10u);
    auto reply = testing::raw_exchange("127.0.0.1", stack.port(), head + ten_bytes, 30s);
    EXPECT_EQ(reply.rfind("HTTP/1.1 408", 0), 0u) << reply;
    EXPECT_NE(reply.find("request_timeout"), std::string::npos) << reply;
    EXPECT_EQ(stack.event_count(), 0);

    // The server still serves everyone else.
    auto client = stack.client();
    EXPECT_EQ(client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 1}}).status, 200);
}

// --- idempotency -------------------------------------------------------------------------

TEST(CommandApi, IdempotencyKeyReplaysTheFirstResponseAndAppendsNothing) {
    CommandStack stack;
    auto client = stack.client();
    const HttpHeaders key = {{"Idempotency-Key", "receipt-1"}};

    auto first = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 4}}, key);
    ASSERT_TRUE(is_accepted(first, 200, "inventory-sku-1", 1));
    EXPECT_EQ(first.header("idempotent-replayed"), "");
    for (int i = 0; i < 3; ++i) {
        auto again = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 4}}, key);
        EXPECT_EQ(again.status, 200);
        EXPECT_EQ(again.body, first.body);
        EXPECT_EQ(again.header("idempotent-replayed"), "true");
    }
    EXPECT_EQ(stack.event_count(), 1);

    // An order without an id: the replay returns the id generated the first time.
    const HttpHeaders order_key = {{"Idempotency-Key", "order-attempt-1"}};
    auto placed = client.post_json("/v1/orders", order_body(""), order_key);
    ASSERT_EQ(placed.status, 202) << placed.body;
    auto replayed = client.post_json("/v1/orders", order_body(""), order_key);
    EXPECT_EQ(replayed.status, 202);
    EXPECT_EQ(replayed.body, placed.body);
    EXPECT_EQ(replayed.header("idempotent-replayed"), "true");
    EXPECT_EQ(stack.event_count(), 2);

    // A refusal is an outcome too, and stays the outcome even once the world has changed.
    const HttpHeaders cancel_key = {{"Idempotency-Key", "cancel-early"}};
    auto not_found = client.post_json("/v1/orders/order-late/cancel", json::object(), cancel_key);
    ASSERT_TRUE(is_problem(not_found, 404, "not_found"));
    place_order(stack, "order-late");
    auto still = client.post_json("/v1/orders/order-late/cancel", json::object(), cancel_key);
    EXPECT_TRUE(is_problem(still, 404, "not_found"));
    EXPECT_EQ(still.body, not_found.body);
    EXPECT_EQ(still.header("idempotent-replayed"), "true");
    EXPECT_EQ(stack.event_count(), 3);
}

TEST(CommandApi, IdempotencyKeyReusedForAnotherRequestIsRefused) {
    CommandStack stack;
    auto client = stack.client();
    const HttpHeaders key = {{"Idempotency-Key", "key-1"}};
    ASSERT_EQ(client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 4}}, key).status, 200);
    const auto before = stack.event_count();

    EXPECT_TRUE(is_problem(client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 5}}, key),
                           422, "idempotency_key_reused"));
    EXPECT_TRUE(is_problem(client.post_json("/v1/inventory/sku-2/receipts", {{"quantity", 4}}, key),
                           422, "idempotency_key_reused"));
    EXPECT_TRUE(is_problem(client.post_json("/v1/accounts/acc-1/deposits", {{"amount", 4}}, key),
                           422, "idempotency_key_reused"));
    EXPECT_EQ(stack.event_count(), before);
    // The key still stands for its first request.
    auto replay = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 4}}, key);
    EXPECT_EQ(replay.status, 200);
    EXPECT_EQ(replay.header("idempotent-replayed"), "true");
}

TEST(CommandApi, ConcurrentRequestsWithOneIdempotencyKeyAppendOnce) {
    CommandStack stack;
    constexpr int kClients = 64;
    std::vector<HttpResponse> responses(kClients);
    std::vector<std::string> failures(kClients);
    std::latch start{kClients};
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
            try {
                auto client = stack.client();
                start.arrive_and_wait();
                responses[i] = client.post_json("/v1/inventory/sku-x/receipts", {{"quantity", 3}},
                                                {{"Idempotency-Key", "one-key-for-all"}});
            } catch (const std::exception& e) {
                failures[i] = e.what();
            }
        });
    }
    for (auto& t : threads) t.join();

    int replayed = 0;
    for (int i = 0; i < kClients; ++i) {
        ASSERT_EQ(failures[i], "") << "client " << i;
        EXPECT_EQ(responses[i].status, responses[0].status) << responses[i].body;
        EXPECT_EQ(responses[i].body, responses[0].body);
        if (responses[i].header("idempotent-replayed") == "true") ++replayed;
    }
    EXPECT_TRUE(is_accepted(responses[0], 200, "inventory-sku-x", 1));
    EXPECT_EQ(replayed, kClients - 1);
    EXPECT_EQ(stack.event_count(), 1);
    auto events = stored_events(stack, "inventory-sku-x");
    ASSERT_EQ(events.size(), 1u);
    EXPECT_EQ(events[0].payload, json({{"sku", "sku-x"}, {"quantity", 3}}));
}

// --- the command bus ---------------------------------------------------------------------

TEST(CommandApi, ConcurrentReservationsNeverOversell) {
    CommandStack stack;
    auto client = stack.client();
    ASSERT_EQ(client.post_json("/v1/inventory/sku-hot/receipts", {{"quantity", 10}}).status, 200);

    constexpr int kBuyers = 50;
    std::vector<BusAnswer> outcomes(kBuyers);
    std::vector<std::string> failures(kBuyers);
    std::latch start{kBuyers};
    std::vector<std::thread> threads;
    for (int i = 0; i < kBuyers; ++i) {
        threads.emplace_back([&, i] {
            auto order_id = "order-" + std::to_string(i);
            start.arrive_and_wait();
            try {
                outcomes[i] = answer(stack.service().send(
                    "reserve-" + order_id, domain::inventory::ReserveStock{"sku-hot", order_id, 1},
                    saga_context()));
            } catch (const std::exception& e) {
                failures[i] = std::string{typeid(e).name()} + ": " + e.what();
            }
        });
    }
    for (auto& t : threads) t.join();

    std::set<std::string> reserved_for;
    int insufficient = 0;
    for (int i = 0; i < kBuyers; ++i) {
        EXPECT_EQ(failures[i], "") << "buyer " << i;
        if (!failures[i].empty()) continue;
        EXPECT_FALSE(outcomes[i].replayed);
        EXPECT_EQ(outcomes[i].stream, "inventory-sku-hot");
        if (!outcomes[i].rejection) {
            reserved_for.insert("order-" + std::to_string(i));
        } else if (outcomes[i].rejection->code == "insufficient_stock") {
            ++insufficient;
        } else {
            ADD_FAILURE() << "buyer " << i << ": " << outcomes[i].rejection->code;
        }
    }
    EXPECT_EQ(reserved_for.size(), 10u);
    EXPECT_EQ(insufficient, 40);

    // Fold the stream as the decider sees it: available never goes below zero.
    auto events = stored_events(stack, "inventory-sku-hot");
    ASSERT_EQ(events.size(), 11u);
    domain::inventory::State state;
    std::set<std::string> reserved_in_store;
    for (const auto& stored : events) {
        auto event = domain::inventory::decode(stored.type, stored.payload);
        ASSERT_TRUE(event) << stored.type << " " << stored.payload.dump();
        state = domain::inventory::evolve(std::move(state), *event);
        EXPECT_GE(state.available(), 0) << "at version " << stored.version;
        if (stored.type == "StockReserved") reserved_in_store.insert(stored.payload["order_id"]);
    }
    EXPECT_EQ(state.reserved(), 10);
    EXPECT_EQ(state.available(), 0);
    EXPECT_EQ(reserved_in_store, reserved_for);
}

// Many saga steps on one popular sku at once: every one of them gets an outcome. The bus
// answers a failure only when the database is unreachable; losing the optimistic race on a
// busy stream is the service's business, not its caller's.
TEST(CommandApi, BusAnswersEveryCommandOnABusyStream) {
    CommandStack stack;
    auto client = stack.client();
    ASSERT_EQ(client.post_json("/v1/inventory/sku-hot/receipts", {{"quantity", 1000}}).status, 200);

    constexpr int kBuyers = 100;
    std::vector<BusAnswer> outcomes(kBuyers);
    std::vector<std::string> failures(kBuyers);
    std::latch start{kBuyers};
    std::vector<std::thread> threads;
    for (int i = 0; i < kBuyers; ++i) {
        threads.emplace_back([&, i] {
            auto order_id = "order-" + std::to_string(i);
            start.arrive_and_wait();
            try {
                outcomes[i] = answer(stack.service().send(
                    "reserve-" + order_id, domain::inventory::ReserveStock{"sku-hot", order_id, 1},
                    saga_context()));
            } catch (const std::exception& e) {
                failures[i] = std::string{typeid(e).name()} + ": " + e.what();
            }
        });
    }
    for (auto& t : threads) t.join();

    int thrown = 0;
    for (int i = 0; i < kBuyers; ++i) {
        if (!failures[i].empty()) {
            if (thrown++ < 3)
                ADD_FAILURE() << "buyer " << i << " got an exception: " << failures[i];
            continue;
        }
        EXPECT_FALSE(outcomes[i].rejection) << "buyer " << i << ": " << outcomes[i].rejection->code;
    }
    EXPECT_EQ(thrown, 0) << "of " << kBuyers << " commands";
    // Whatever the answers, the stream holds exactly the reservations that were reported.
    auto events = stored_events(stack, "inventory-sku-hot");
    EXPECT_EQ(events.size(), static_cast<std::size_t>(1 + kBuyers - thrown));
}

// Starvation shows in any build: a pool of two connections and a hundred commands over
// three streams, one of which is held up (its row locked by another transaction). The held
// stream's commands queue for its turn in the process, where only the first holds a
// connection; the other two streams' commands share the second connection and are all
// answered while the lock is still held. Then the held stream's commands finish too.
TEST(CommandApi, ATinyPoolAnswersEveryCommandOverThreeStreamsWhileOneIsHeldUp) {
    CommandStack stack{{}, 2};
    auto client = stack.client();
    const std::vector<std::string> skus{"sku-held", "sku-b", "sku-c"};
    for (const auto& sku : skus) {
        ASSERT_EQ(
            client.post_json("/v1/inventory/" + sku + "/receipts", {{"quantity", 1000}}).status,
            200);
    }
    pqxx::connection locker{stack.database().admin_url()};
    auto lock = std::make_unique<pqxx::work>(locker);
    lock->exec("SET LOCAL idle_in_transaction_session_timeout = 0");
    lock->exec("SELECT 1 FROM ordo.streams WHERE stream_id = 'inventory-sku-held' FOR UPDATE");

    constexpr int kBuyers = 100;
    std::vector<BusAnswer> outcomes(kBuyers);
    std::vector<std::string> failures(kBuyers);
    auto buy = [&](int i) {
        auto order_id = "order-" + std::to_string(i);
        try {
            outcomes[i] = answer(stack.service().send(
                "reserve-" + order_id, domain::inventory::ReserveStock{skus[i % 3], order_id, 1},
                saga_context()));
        } catch (const std::exception& e) {
            failures[i] = std::string{typeid(e).name()} + ": " + e.what();
        }
    };
    std::vector<std::thread> held, free;
    struct Cleanup {  // on an early failure too: let go of the lock, then join everyone
        std::unique_ptr<pqxx::work>& lock;
        std::vector<std::thread>& held;
        std::vector<std::thread>& free;
        ~Cleanup() {
            lock.reset();
            for (auto* threads : {&free, &held}) {
                for (auto& t : *threads) {
                    if (t.joinable()) t.join();
                }
            }
        }
    } cleanup{lock, held, free};
    for (int i = 0; i < kBuyers; i += 3) held.emplace_back(buy, i);
    const auto held_count = held.size();
    // Every command on the held stream has arrived: one waits for the row lock in the
    // database, the rest for the stream's turn in the process.
    auto lock_waiters = [&] {
        return scalar(stack.database().admin_url(),
                      "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                      "datname = '" +
                          stack.database().name() + "'");
    };
    ASSERT_TRUE(eventually(
        [&] {
            return lock_waiters() == 1 &&
                   stack.metrics().render().find("ordo_command_waiting " +
                                                 std::to_string(held_count - 1) + "\n") !=
                       std::string::npos;
        },
        60s))
        << stack.metrics().render();
    for (int i = 0; i < kBuyers; ++i) {
        if (i % 3 != 0) free.emplace_back(buy, i);
    }
    for (auto& t : free) t.join();
    for (int i = 0; i < kBuyers; ++i) {
        if (i % 3 == 0) continue;
        EXPECT_EQ(failures[i], "") << "buyer " << i << " on " << skus[i % 3];
        EXPECT_FALSE(outcomes[i].rejection) << "buyer " << i;
    }
    EXPECT_EQ(lock_waiters(), 1) << "the held stream still holds only one connection";
    lock.reset();  // rolls back: the held stream is free
    for (auto& t : held) t.join();
    for (int i = 0; i < kBuyers; i += 3) {
        EXPECT_EQ(failures[i], "") << "buyer " << i << " on the held stream";
        EXPECT_FALSE(outcomes[i].rejection) << "buyer " << i;
    }
    for (std::size_t k = 0; k < skus.size(); ++k) {
        auto reservations = (kBuyers - static_cast<int>(k) + 2) / 3;
        EXPECT_EQ(stored_events(stack, "inventory-" + skus[k]).size(),
                  static_cast<std::size_t>(1 + reservations))
            << skus[k];
    }
}

// A command that gets no connection before its start timeout was not started: REST says
// 503 with Retry-After, the bus answers that it was not sent, and nothing is stored.
TEST(CommandApi, ACommandThatGetsNoConnectionInTimeIsRefusedAndChangesNothing) {
    CommandStack stack{{}, 1, {.start_timeout = std::chrono::milliseconds(200)}};
    auto client = stack.client();
    ASSERT_EQ(client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 5}}).status, 200);
    const auto before = stack.event_count();
    {
        auto held = stack.pool().acquire();  // the pool's only connection
        auto res = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 7}});
        EXPECT_TRUE(is_problem(res, 503, "unavailable")) << res.status << " " << res.body;
        EXPECT_FALSE(res.header("retry-after").empty());
        EXPECT_TRUE(std::holds_alternative<domain::CommandNotSent>(stack.service().send(
            "reserve-order-1", domain::inventory::ReserveStock{"sku-1", "order-1", 1},
            saga_context())));
    }
    EXPECT_EQ(stack.event_count(), before);
    // Once a connection is free the same command id runs as if it had never been sent.
    auto outcome = answer(stack.service().send(
        "reserve-order-1", domain::inventory::ReserveStock{"sku-1", "order-1", 1}, saga_context()));
    EXPECT_FALSE(outcome.rejection);
    EXPECT_FALSE(outcome.replayed);
    EXPECT_EQ(stack.event_count(), before + 1);
    EXPECT_NE(stack.metrics().render().find("ordo_command_not_started_total 2"), std::string::npos);
}

// Concurrent receipts on one sku: each is either accepted and stored once, or refused as a
// documented, retryable 503 that stored nothing.
TEST(CommandApi, ConcurrentReceiptsOnOneSkuAreStoredExactlyWhenAccepted) {
    CommandStack stack;
    constexpr int kClients = 64;
    std::vector<HttpResponse> responses(kClients);
    std::vector<std::string> failures(kClients);
    std::latch start{kClients};
    std::vector<std::thread> threads;
    for (int i = 0; i < kClients; ++i) {
        threads.emplace_back([&, i] {
            try {
                auto client = stack.client();
                start.arrive_and_wait();
                responses[i] =
                    client.post_json("/v1/inventory/sku-x/receipts", {{"quantity", i + 1}});
            } catch (const std::exception& e) {
                failures[i] = e.what();
            }
        });
    }
    for (auto& t : threads) t.join();

    std::set<std::int64_t> accepted_quantities;
    std::set<std::int64_t> versions;
    for (int i = 0; i < kClients; ++i) {
        ASSERT_EQ(failures[i], "") << "client " << i;
        const auto& res = responses[i];
        if (res.status == 200) {
            accepted_quantities.insert(i + 1);
            versions.insert(res.json().value("version", std::int64_t{0}));
        } else {
            EXPECT_TRUE(is_problem(res, 503, "unavailable"));
            EXPECT_FALSE(res.header("retry-after").empty());
        }
    }
    EXPECT_EQ(versions.size(), accepted_quantities.size())
        << "each accepted receipt has its own version";
    std::set<std::int64_t> stored_quantities;
    for (const auto& event : stored_events(stack, "inventory-sku-x")) {
        stored_quantities.insert(event.payload.value("quantity", std::int64_t{0}));
    }
    EXPECT_EQ(stored_quantities, accepted_quantities);
    EXPECT_EQ(stack.event_count(), static_cast<std::int64_t>(accepted_quantities.size()));
}

TEST(CommandApi, BusReplaysACommandIdAndRefusesItsReuse) {
    CommandStack stack;
    auto client = stack.client();
    ASSERT_EQ(client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 5}}).status, 200);
    auto& bus = stack.service();
    const domain::inventory::ReserveStock reserve{"sku-1", "order-1", 2};

    auto first = answer(bus.send("cmd-reserve-1", reserve, saga_context()));
    ASSERT_FALSE(first.rejection) << first.rejection->code;
    EXPECT_FALSE(first.replayed);
    EXPECT_EQ(first.stream, "inventory-sku-1");
    EXPECT_EQ(first.version, 2);
    EXPECT_FALSE(first.position.empty());
    auto events = stored_events(stack, "inventory-sku-1");
    ASSERT_EQ(events.size(), 2u);
    EXPECT_EQ(events[1].type, "StockReserved");
    EXPECT_EQ(events[1].metadata.value("command_id", ""), "cmd-reserve-1");

    const auto before = stack.event_count();
    auto again = answer(bus.send("cmd-reserve-1", reserve, saga_context()));
    EXPECT_TRUE(again.replayed);
    EXPECT_FALSE(again.rejection);
    EXPECT_EQ(again.stream, first.stream);
    EXPECT_EQ(again.version, first.version);
    EXPECT_EQ(again.position, first.position);
    EXPECT_EQ(stack.event_count(), before);

    EXPECT_THROW(bus.send("cmd-reserve-1", domain::inventory::ReserveStock{"sku-1", "order-1", 3},
                          saga_context()),
                 command::KeyReused);
    EXPECT_THROW(
        bus.send("cmd-reserve-1", domain::inventory::ReleaseReservation{"sku-1", "order-1"},
                 saga_context()),
        command::KeyReused);
    EXPECT_EQ(stack.event_count(), before);

    // A rejection is the first outcome too: it stays, even once stock has arrived.
    auto refused = answer(bus.send(
        "cmd-reserve-2", domain::inventory::ReserveStock{"sku-1", "order-2", 4}, saga_context()));
    ASSERT_TRUE(refused.rejection);
    EXPECT_EQ(refused.rejection->code, "insufficient_stock");
    ASSERT_EQ(client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 100}}).status, 200);
    const auto after_receipt = stack.event_count();
    auto refused_again = answer(bus.send(
        "cmd-reserve-2", domain::inventory::ReserveStock{"sku-1", "order-2", 4}, saga_context()));
    EXPECT_TRUE(refused_again.replayed);
    ASSERT_TRUE(refused_again.rejection);
    EXPECT_EQ(refused_again.rejection->code, "insufficient_stock");
    EXPECT_EQ(stack.event_count(), after_receipt);
}

// --- authentication ----------------------------------------------------------------------

TEST(CommandApi, TokensGuardTheCommandRoutes) {
    platform::http::ServerOptions options;
    options.tokens = testing::token_set({{"loader", "commands", "secret"}});
    CommandStack stack{options};
    auto client = stack.client();
    const std::string target = "/v1/inventory/sku-1/receipts";
    const json body = {{"quantity", 1}};

    for (const HttpHeaders& headers :
         std::vector<HttpHeaders>{{},
                                  {{"Authorization", "Bearer wrong"}},
                                  {{"Authorization", "Bearer secretX"}},
                                  {{"Authorization", "Bearer "}},
                                  {{"Authorization", "Basic c2VjcmV0"}},
                                  {{"Authorization", "secret"}}}) {
        SCOPED_TRACE(headers.empty() ? "no token" : headers[0].second);
        auto res = client.post_json(target, body, headers);
        EXPECT_TRUE(is_problem(res, 401, "unauthorized"));
        EXPECT_EQ(res.header("www-authenticate"), "Bearer");
    }
    // Not even the routes are revealed without a token.
    EXPECT_TRUE(is_problem(client.get("/v1/nothing-here"), 401, "unauthorized"));
    // Nor does another spelling of the path get past the check.
    for (const char* path : {"/%761/inventory/sku-1/receipts", "/%76%31/inventory/sku-1/receipts",
                             "/v%31/inventory/sku-1/receipts", "//v1/inventory/sku-1/receipts",
                             "/v1/./inventory/sku-1/receipts", "/v1/../v1/inventory/sku-1/receipts",
                             "/V1/inventory/sku-1/receipts", "/v1/inventory/sku%2D1/receipts",
                             "/v1/inventory/sku-1%2Freceipts", "/v1/inventory/sku-1/receipts/"}) {
        SCOPED_TRACE(path);
        auto res = client.post_json(path, body);
        EXPECT_TRUE(is_problem(res, 401, "unauthorized"));
    }
    EXPECT_EQ(stack.event_count(), 0);

    auto ok = client.post_json(target, body, {{"Authorization", "Bearer secret"}});
    EXPECT_TRUE(is_accepted(ok, 200, "inventory-sku-1", 1));
    EXPECT_EQ(stack.event_count(), 1);
}

TEST(CommandApi, OnlyATokenWithTheCommandsScopeMayCommand) {
    platform::http::ServerOptions options;
    options.tokens = testing::token_set({{"dashboard", "read", "read-token"},
                                         {"operator", "admin", "admin-token"},
                                         {"loader", "commands", "command-token"}});
    CommandStack stack{options};
    auto client = stack.client();
    const json order = {{"customer_id", "cust-1"},
                        {"account_id", "acct-1"},
                        {"lines", {{{"sku", "sku-1"}, {"quantity", 1}, {"unit_price", 5}}}}};
    for (const char* token : {"read-token", "admin-token"}) {
        SCOPED_TRACE(token);
        for (const auto& [target, body] : std::vector<std::pair<std::string, json>>{
                 {"/v1/inventory/sku-1/receipts", {{"quantity", 1}}},
                 {"/v1/accounts/acct-1/deposits", {{"amount", 100}}},
                 {"/v1/orders", order},
                 {"/v1/orders/o-1/cancel", json::object()},
                 {"/%761/inventory/sku-1/receipts", {{"quantity", 1}}}}) {
            SCOPED_TRACE(target);
            auto res = client.post_json(target, body, testing::bearer(token));
            EXPECT_TRUE(is_problem(res, 403, "forbidden"));
        }
    }
    EXPECT_EQ(stack.event_count(), 0);

    // The token's name is the actor of what its commands append.
    auto ok = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 1}},
                               testing::bearer("command-token"));
    ASSERT_TRUE(is_accepted(ok, 200, "inventory-sku-1", 1));
    auto events = stored_events(stack, "inventory-sku-1");
    ASSERT_EQ(events.size(), 1U);
    EXPECT_EQ(events[0].metadata.value("actor", ""), "loader") << events[0].metadata.dump();
}

TEST(CommandApi, ACommitWhoseOutcomeIsUnknownSaysSoAndARepeatWithTheKeyResolvesIt) {
    CommandStack stack;
    auto client = stack.client();
    // The session that commits an event of this stream ends itself during the commit: a
    // deferred trigger runs at COMMIT and terminates its own backend.
    const auto& admin = stack.database().admin_url();
    scalar(admin,
           "CREATE FUNCTION ordo.end_session_at_commit() RETURNS trigger LANGUAGE plpgsql AS "
           "$$ BEGIN PERFORM pg_terminate_backend(pg_backend_pid()); RETURN NULL; END $$");
    scalar(admin,
           "CREATE CONSTRAINT TRIGGER doom AFTER INSERT ON ordo.events DEFERRABLE INITIALLY "
           "DEFERRED FOR EACH ROW WHEN (NEW.stream_id = 'inventory-doomed') EXECUTE FUNCTION "
           "ordo.end_session_at_commit()");
    const HttpHeaders key{{"Idempotency-Key", "k-doomed"}};
    auto res = client.post_json("/v1/inventory/doomed/receipts", {{"quantity", 1}}, key);
    EXPECT_TRUE(is_problem(res, 503, "outcome_unknown"));
    EXPECT_EQ(res.header("retry-after"), "1");
    EXPECT_NE(res.json().at("detail").get<std::string>().find("same Idempotency-Key"),
              std::string::npos);
    EXPECT_EQ(stack.event_count(), 0);  // here the commit did not happen

    // The store is well again: the repeat under the key does it, once.
    scalar(admin, "DROP TRIGGER doom ON ordo.events");
    auto again = client.post_json("/v1/inventory/doomed/receipts", {{"quantity", 1}}, key);
    EXPECT_TRUE(is_accepted(again, 200, "inventory-doomed", 1));
    auto repeat = client.post_json("/v1/inventory/doomed/receipts", {{"quantity", 1}}, key);
    EXPECT_EQ(repeat.header("idempotent-replayed"), "true");
    EXPECT_EQ(stack.event_count(), 1);
}

TEST(CommandApi, OldIdempotencyKeysExpireInBoundedBatchesAndNewOnesStay) {
    CommandStack stack;
    auto client = stack.client();
    // 25 old keys (their rows aged by hand) and 3 recent ones.
    for (int i = 0; i < 28; ++i) {
        auto res = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 1}},
                                    {{"Idempotency-Key", "k-" + std::to_string(i)}});
        ASSERT_EQ(res.status, 200) << res.body;
    }
    const auto url = stack.database().migrator_url();  // ages rows by hand
    scalar(url,
           "WITH old AS (UPDATE ordo.command_log SET created_at = now() - interval '49 hours' "
           "WHERE key IN (SELECT key FROM ordo.command_log ORDER BY key LIMIT 25) RETURNING 1) "
           "SELECT count(*) FROM old");
    ASSERT_EQ(scalar(url,
                     "SELECT count(*) FROM ordo.command_log WHERE created_at < now() - "
                     "interval '48 hours'"),
              25);

    // A run stops after its batches, leaving the rest to the next.
    auto first = stack.executor().expire(std::chrono::hours(48), 10, 1);
    EXPECT_EQ(first.records, 10);
    EXPECT_EQ(first.batches, 1);
    auto expired = stack.executor().expire(std::chrono::hours(48), 10);
    EXPECT_EQ(expired.records, 15);
    EXPECT_EQ(expired.batches, 2);  // 10 + 5
    EXPECT_EQ(scalar(url, "SELECT count(*) FROM ordo.command_log"), 3);
    // Nothing left to do is one empty batch.
    auto again = stack.executor().expire(std::chrono::hours(48), 10);
    EXPECT_EQ(again.records, 0);
    EXPECT_EQ(again.batches, 1);
}

TEST(CommandApi, IdempotencyKeysBelongToTheTokensName) {
    platform::http::ServerOptions options;
    options.tokens = testing::token_set(
        {{"alice", "commands", "alice-token"}, {"bob", "commands", "bob-token"}});
    CommandStack stack{options};
    auto client = stack.client();
    const std::string target = "/v1/inventory/sku-1/receipts";
    auto as = [](const std::string& authorization) {
        return HttpHeaders{{"Authorization", authorization}, {"Idempotency-Key", "k-1"}};
    };
    auto alice = client.post_json(target, {{"quantity", 1}}, as("Bearer alice-token"));
    ASSERT_EQ(alice.status, 200) << alice.body;
    // Bob's request under the same key is his own: neither a replay nor a reuse.
    auto bob = client.post_json(target, {{"quantity", 2}}, as("Bearer bob-token"));
    ASSERT_EQ(bob.status, 200) << bob.body;
    EXPECT_TRUE(bob.header("idempotent-replayed").empty());
    EXPECT_EQ(stack.event_count(), 2);
    // Alice's repeat is a replay of her first answer however she spells the header.
    for (const char* authorization :
         {"Bearer alice-token", "bearer alice-token", "BEARER   alice-token  "}) {
        SCOPED_TRACE(authorization);
        auto again = client.post_json(target, {{"quantity", 1}}, as(authorization));
        EXPECT_EQ(again.header("idempotent-replayed"), "true");
        EXPECT_EQ(again.body, alice.body);
    }
    EXPECT_EQ(stack.event_count(), 2);
}

TEST(CommandApi, AnEncodedPathIsTheSameRequestForItsIdempotencyKey) {
    CommandStack stack;
    auto client = stack.client();
    HttpHeaders key{{"Idempotency-Key", "k-enc"}};
    auto first = client.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 1}}, key);
    ASSERT_EQ(first.status, 200) << first.body;
    auto encoded = client.post_json("/v1/inventory/sku%2D1/receipts", {{"quantity", 1}}, key);
    EXPECT_EQ(encoded.status, 200) << encoded.body;
    EXPECT_EQ(encoded.header("idempotent-replayed"), "true");
    EXPECT_EQ(stack.event_count(), 1);
}

}  // namespace
}  // namespace ordo
