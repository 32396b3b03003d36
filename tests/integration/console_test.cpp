// The operator console (query/console.hpp) against every Ordo service as a real process: its
// files and their policy, the built-in trace collector, the forwarded dead-letter actions, and
// headless Chromium driving each view over a stack with a compensated saga, a parked dead
// letter and an open breaker. Screenshots go to test-output/console/ under the test's working
// directory (the build's tests/ folder) for review.

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <thread>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "platform/core/trace.hpp"
#include "platform/http/otlp.hpp"
#include "platform/nats/jetstream.hpp"
#include "tests/support/browser.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"
#include "tests/support/tokens.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

constexpr const char* kOperator = "operator-token-0123456789abcdef";    // read, admin, commands
constexpr const char* kViewer = "viewer-token-0123456789abcdef";        // read
constexpr const char* kTelemetry = "telemetry-token-0123456789abcdef";  // telemetry

// Every service as a process over one test database, with API tokens, a JetStream stream and
// breaker bucket of its own, spans sent to the query service's collector, and the
// projectors' breakers quick to open and slow to close (an open breaker stays for the test).
class ConsoleStack {
   public:
    explicit ConsoleStack(bool all_services = true)
        : command_port_{free_port()}, query_port_{free_port()} {
        dir_ = (std::filesystem::temp_directory_path() / ("ordo-console-" + db_.name())).string();
        std::filesystem::create_directories(dir_);
        const auto tokens_file = dir_ + "/tokens";
        auto line = [](const std::string& name, const std::string& scopes,
                       const std::string& token) {
            return name + " " + scopes + " " +
                   platform::http::to_hex(platform::http::sha256(token)) + "\n";
        };
        std::ofstream{tokens_file} << line("operator", "commands,read,admin", kOperator)
                                   << line("viewer", "read", kViewer)
                                   << line("collector", "telemetry", kTelemetry);
        stream_ = "ORDO_CONSOLE_" + db_.name();
        bucket_ = "ORDO_CONSOLE_BREAKERS_" + db_.name();
        auto env = spawned_service_env(db_);
        env.merge(std::map<std::string, std::string>{
            {"ORDO_NATS_STREAM", stream_},
            {"ORDO_NATS_SUBJECT_PREFIX", "console." + db_.name() + ".events"},
            {"ORDO_BREAKER_BUCKET", bucket_},
            {"ORDO_PARTITIONS", "4"},
            {"ORDO_SAGA_MODE", "orchestration"},
            {"ORDO_API_TOKENS_FILE", tokens_file},
            {"ORDO_COMMAND_URL", "http://" + at(command_port_)},
            {"OTEL_EXPORTER_OTLP_ENDPOINT", "http://" + at(query_port_)},
            {"OTEL_EXPORTER_OTLP_HEADERS", std::string{"Authorization=Bearer%20"} + kTelemetry},
            {"ORDO_LOG_LEVEL", "error"}});
        start({"serve", "query", "--address", at(query_port_)}, env);
        if (all_services) {
            start({"serve", "command", "--address", at(command_port_)}, env);
            for (const char* service : {"relay", "sagas"})
                start({"serve", service, "--address", at(free_port())}, env);
            // The projector's breakers open after two timeouts of a second and stay open for
            // the test; the sagas service's intake keeps the defaults.
            auto projector = env;
            projector.merge(std::map<std::string, std::string>{
                {"ORDO_BREAKER_CONSECUTIVE_FAILURES", "2"},
                {"ORDO_BREAKER_COOL_DOWN_MS", "120000"},
                {"ORDO_PROJECTOR_STATEMENT_TIMEOUT_MS", "1000"}});
            start({"serve", "projector", "--address", at(free_port())}, projector);
        }
        for (auto port :
             all_services ? std::vector{query_port_, command_port_} : std::vector{query_port_}) {
            if (!wait_healthy(port)) throw std::runtime_error("a service did not come up");
        }
    }
    ~ConsoleStack() {
        processes_.clear();  // SIGKILLed and reaped
        try {
            platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
            nats.delete_stream(stream_);
            nats.delete_stream("KV_" + bucket_);
        } catch (const std::exception&) {
        }
        std::error_code ignored;
        std::filesystem::remove_all(dir_, ignored);
    }

    const TestDatabase& db() const { return db_; }
    std::uint16_t query_port() const { return query_port_; }
    HttpClient commands() const { return HttpClient{"127.0.0.1", command_port_}; }
    HttpClient queries() const { return HttpClient{"127.0.0.1", query_port_}; }
    std::string console_url() const { return "http://" + at(query_port_) + "/console"; }

    // A query service answer with the operator's token; null when it is not 200.
    json read(const std::string& target) const {
        auto res = queries().get(target, bearer(kOperator));
        return res.status == 200 ? res.json() : json(nullptr);
    }

   private:
    static std::string at(std::uint16_t port) { return "127.0.0.1:" + std::to_string(port); }
    void start(std::vector<std::string> args, const std::map<std::string, std::string>& env) {
        args.insert(args.begin(), ordo_binary());
        processes_.push_back(std::make_unique<Process>(args, env));
    }

    TestDatabase db_;
    std::uint16_t command_port_, query_port_;
    std::string dir_, stream_, bucket_;
    std::vector<std::unique_ptr<Process>> processes_;
};

// --- without a browser -------------------------------------------------------------------

TEST(ConsoleApi, ServesItsFilesToAnyoneWithAStrictPolicyAndETags) {
    ConsoleStack stack{false};
    auto client = stack.queries();
    auto page = client.get("/console");  // no token: the files hold no data
    ASSERT_EQ(page.status, 200) << page.body;
    EXPECT_EQ(page.header("content-type"), "text/html; charset=utf-8");
    EXPECT_NE(page.body.find("/console/console.js"), std::string::npos);
    const auto policy = page.header("content-security-policy");
    EXPECT_NE(policy.find("script-src 'self'"), std::string::npos) << policy;
    EXPECT_NE(policy.find("default-src 'none'"), std::string::npos) << policy;
    EXPECT_EQ(page.header("x-content-type-options"), "nosniff");
    EXPECT_EQ(page.header("x-frame-options"), "DENY");

    auto script = client.get("/console/console.js");
    ASSERT_EQ(script.status, 200);
    EXPECT_EQ(script.header("content-type"), "text/javascript; charset=utf-8");
    EXPECT_NE(script.body.find("'use strict';"), std::string::npos);
    const auto etag = script.header("etag");
    ASSERT_FALSE(etag.empty());
    auto again = client.get("/console/console.js", {{"If-None-Match", etag}});
    EXPECT_EQ(again.status, 304);
    EXPECT_TRUE(again.body.empty());
    EXPECT_EQ(client.get("/console/console.css").header("content-type"), "text/css; charset=utf-8");
    EXPECT_EQ(client.get("/console/nothing.js").status, 404);
    EXPECT_EQ(client.get("/console/..%2Fservice.cpp", bearer(kViewer)).status,
              400);  // one spelling per path (checked after the token)
    // The data the views read still needs its token and scope.
    EXPECT_EQ(client.get("/v1/admin/projections").status, 401);
    EXPECT_EQ(client.get("/v1/admin/projections", bearer(kViewer)).status, 403);
    EXPECT_EQ(client.get("/v1/admin/projections", bearer(kOperator)).status, 200);
    EXPECT_EQ(client.get("/v1/admin/relays", bearer(kViewer)).status, 403);
}

// Ordo's own encoder's output, as its exporters send it.
std::string export_request(const platform::TraceContext& trace, const std::string& name,
                           const std::string& service) {
    platform::otlp::Span span;
    span.context = trace;
    span.name = name;
    span.kind = platform::otlp::SpanKind::server;
    span.start = std::chrono::system_clock::now() - 5ms;
    span.end = std::chrono::system_clock::now();
    span.attributes = {{"http.route", std::string{"/v1/orders"}}};
    return platform::otlp::encode({span}, service).dump();
}

TEST(ConsoleApi, TheCollectorTakesSpansOnlyWithTheTelemetryScopeAndAllOrNothing) {
    ConsoleStack stack{false};
    auto client = stack.queries();
    const auto trace = platform::new_trace();
    const auto path = "/v1/traces/" + trace.trace_id_hex();
    const auto body = export_request(trace, "POST /v1/orders", "ordo-command");
    auto post = [&](const std::string& token, const std::string& payload,
                    const std::string& type = "application/json") {
        HttpHeaders headers = bearer(token);
        headers.emplace_back("Content-Type", type);
        return client.request("POST", "/v1/traces", payload, headers);
    };
    EXPECT_EQ(post(kViewer, body).status, 403);
    EXPECT_EQ(post(kOperator, body).status, 403);  // admin is not telemetry
    EXPECT_EQ(client.get(path, bearer(kViewer)).status, 404);

    auto bad = json::parse(body);
    bad["resourceSpans"][0]["scopeSpans"][0]["spans"][0]["spanId"] = "xyz";
    auto refused = post(kTelemetry, bad.dump());
    EXPECT_EQ(refused.status, 400) << refused.body;
    EXPECT_NE(refused.json()["detail"].get<std::string>().find("spanId"), std::string::npos)
        << refused.body;
    EXPECT_EQ(post(kTelemetry, "{not json").status, 400);
    EXPECT_EQ(post(kTelemetry, body, "application/x-protobuf").status, 415);
    EXPECT_EQ(client.get(path, bearer(kViewer)).status, 404) << "a refused request stored spans";

    auto stored = post(kTelemetry, body);
    ASSERT_EQ(stored.status, 200) << stored.body;
    EXPECT_EQ(post(kTelemetry, body).status, 200);  // a retried export replaces, not doubles
    auto read = client.get(path, bearer(kViewer));
    ASSERT_EQ(read.status, 200) << read.body;
    auto spans = read.json()["spans"];
    ASSERT_EQ(spans.size(), 1u) << read.body;
    EXPECT_EQ(spans[0]["service"], "ordo-command");
    EXPECT_EQ(spans[0]["name"], "POST /v1/orders");
    EXPECT_EQ(spans[0]["span_id"], trace.span_id_hex());
    EXPECT_EQ(spans[0]["attributes"]["http.route"], "/v1/orders");
    EXPECT_GE(spans[0]["end_ns"].get<std::int64_t>(), spans[0]["start_ns"].get<std::int64_t>());
    EXPECT_TRUE(read.json()["events"].empty());
    // The telemetry scope reads nothing.
    EXPECT_EQ(client.get(path, bearer(kTelemetry)).status, 403);
}

// The console's actions go to the Command API only for an admin, only from the console (its
// header), and say so when the Command API cannot be reached (none runs here).
TEST(ConsoleApi, TheActionsNeedAdminTheConsolesHeaderAndAReachableCommandApi) {
    ConsoleStack stack{false};
    auto client = stack.queries();
    auto post = [&](const std::string& token, const std::string& target, bool header = true) {
        HttpHeaders headers = bearer(token);
        if (header) headers.emplace_back("X-Ordo-Console", "1");
        return client.request("POST", target, "", headers);
    };
    EXPECT_EQ(post(kViewer, "/console/api/dead-letters/1/retry").status, 403);
    EXPECT_EQ(post(kOperator, "/console/api/dead-letters/1/retry", false).status, 403);
    auto invalid = post(kOperator, "/console/api/dead-letters/x1/skip");
    EXPECT_EQ(invalid.status, 422) << invalid.body;
    auto away = post(kOperator, "/console/api/dead-letters/1/retry");
    EXPECT_EQ(away.status, 503) << away.body;
    EXPECT_EQ(away.header("retry-after"), "1");
    EXPECT_EQ(
        client.request("GET", "/console/api/dead-letters/1/retry", "", bearer(kOperator)).status,
        405);
}

// --- the stack the browser looks at --------------------------------------------------------

struct Scene {
    std::int64_t letter_id = 0;
};

// An order the orders projection cannot apply until the trigger goes (the cause an operator
// fixes), with markup in its error that the console must show as text.
void add_poison_trigger(const TestDatabase& db) {
    pqxx::connection conn{db.admin_url()};
    pqxx::work tx{conn};
    tx.exec(
        "CREATE FUNCTION read.refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION '<img src=x onerror=\"window.__pwned=1\"> refused by a test' USING "
        "ERRCODE = 'check_violation'; END $$");
    tx.exec(
        "CREATE TRIGGER refuse_poison BEFORE INSERT OR UPDATE ON read.orders FOR EACH ROW "
        "WHEN (NEW.order_id = 'o-poison') EXECUTE FUNCTION read.refuse_poison()");
    tx.commit();
}

void drop_poison_trigger(const TestDatabase& db) {
    pqxx::connection conn{db.admin_url()};
    pqxx::work tx{conn};
    tx.exec("DROP TRIGGER refuse_poison ON read.orders");
    tx.commit();
}

json order(const std::string& id, const std::string& account, int price) {
    return {{"order_id", id},
            {"customer_id", "cust-1"},
            {"account_id", account},
            {"lines", json::array({{{"sku", "sku-1"}, {"quantity", 1}, {"unit_price", price}}})}};
}

// A completed order, one whose payment is refused for want of funds (compensated), and one
// the orders projection parks; returns the parked letter.
Scene set_scene(ConsoleStack& stack) {
    add_poison_trigger(stack.db());
    auto commands = stack.commands();
    auto expect = [](const HttpResponse& res, int status) {
        if (res.status != status)
            throw std::runtime_error("unexpected " + std::to_string(res.status) + ": " + res.body);
    };
    expect(
        commands.post_json("/v1/inventory/sku-1/receipts", {{"quantity", 100}}, bearer(kOperator)),
        200);
    expect(commands.post_json("/v1/accounts/acct-rich/deposits", {{"amount", 100000}},
                              bearer(kOperator)),
           200);
    expect(
        commands.post_json("/v1/accounts/acct-poor/deposits", {{"amount", 10}}, bearer(kOperator)),
        200);
    for (const auto& [id, account, price] :
         std::vector<std::tuple<std::string, std::string, int>>{{"o-ok", "acct-rich", 100},
                                                                {"o-declined", "acct-poor", 500},
                                                                {"o-poison", "acct-rich", 100}}) {
        expect(commands.post_json("/v1/orders", order(id, account, price), bearer(kOperator)), 202);
    }
    Scene scene;
    EXPECT_TRUE(eventually([&] {
        auto saga = stack.read("/v1/sagas/o-declined");
        return saga.is_object() && saga["status"] == "compensated";
    })) << stack.read("/v1/sagas/o-declined").dump();
    EXPECT_TRUE(eventually([&] {
        auto letters = stack.read("/v1/admin/dead-letters?status=parked");
        if (!letters.is_object()) return false;
        for (const auto& d : letters["dead_letters"]) {
            if (d["stream"] == "order-o-poison" ||
                d["payload"].value("order_id", "") == "o-poison") {
                scene.letter_id = d["id"].get<std::int64_t>();
                return true;
            }
        }
        return false;
    })) << stack.read("/v1/admin/dead-letters").dump();
    return scene;
}

std::string output_path(const std::string& name) {
    return (std::filesystem::current_path() / "test-output" / "console" / name).string();
}

// Text of the first element matching `selector`, for assertions.
std::string text_of(Browser& browser, const std::string& selector) {
    auto value = browser.evaluate("(document.querySelector(" + json(selector).dump() +
                                  ") || {}).textContent || ''");
    return value.get<std::string>();
}

TEST(ConsoleBrowser, AnOperatorSeesHealthFindsWhyASagaFailedFollowsItsTraceAndRetriesALetter) {
    if (!browser_available()) GTEST_SKIP() << "chromium is not installed (deploy/install.sh)";
    ConsoleStack stack;
    const auto scene = set_scene(stack);
    ASSERT_GT(scene.letter_id, 0);

    // A read model held locked past the projector's statement timeout while its events come:
    // the inventory breaker opens (and stays open for the test: its cool-down is long).
    pqxx::connection locker{stack.db().admin_url()};
    pqxx::work lock{locker};
    lock.exec("SET LOCAL idle_in_transaction_session_timeout = 0");
    lock.exec("LOCK TABLE read.inventory IN SHARE MODE");
    {
        auto commands = stack.commands();
        for (int i = 0; i < 6; ++i) {
            ASSERT_EQ(commands
                          .post_json("/v1/inventory/sku-" + std::to_string(i) + "/receipts",
                                     {{"quantity", 1}}, bearer(kOperator))
                          .status,
                      200);
        }
    }
    ASSERT_TRUE(eventually([&] {
        auto list = stack.read("/v1/admin/projections");
        if (!list.is_object()) return false;
        for (const auto& p : list["projections"]) {
            if (p["projection"] == "inventory" && p["breaker"] == "open") return true;
        }
        return false;
    })) << stack.read("/v1/admin/projections").dump();

    Browser browser;
    // Projections and relays: the page first asks for a token.
    browser.open(stack.console_url() + "#/projections");
    browser.wait_for("document.querySelector('main .problem[data-status=\"401\"]')");
    browser.type("#token", kOperator);
    browser.click("#token-form button[type=submit]");
    browser.wait_for(
        "document.querySelector('#projections tr[data-projection=\"inventory\"] .breaker "
        ".badge.open')");
    EXPECT_NE(text_of(browser, "#projections tr[data-projection=\"inventory\"] .transitions")
                  .find("open"),
              std::string::npos);
    browser.wait_for("document.querySelector('#relays tr[data-shard=\"0\"] .badge.live')");
    EXPECT_NE(text_of(browser, "#relays tr[data-shard=\"0\"] td:nth-child(2) code").find(':'),
              std::string::npos);  // host:pid of the leading relay
    browser.screenshot(output_path("projections.png"));
    lock.abort();

    // The compensated saga, found by its order id: why it failed, on a timeline.
    browser.open(stack.console_url() + "#/sagas");
    browser.type("#order-id", "o-declined");
    browser.click("form.search button[type=submit]");
    browser.wait_for("document.querySelector('#saga[data-status=\"compensated\"]')");
    const auto why = text_of(browser, "#saga-why");
    EXPECT_NE(why.find("insufficient_funds"), std::string::npos) << why;
    EXPECT_GE(browser.evaluate("document.querySelectorAll('#saga-timeline .row[data-step]').length")
                  .get<int>(),
              3);
    EXPECT_GE(browser.evaluate("document.querySelectorAll('#saga-timeline .bar.rejected').length")
                  .get<int>(),
              1);
    browser.screenshot(output_path("saga.png"));

    // Its trace: spans of several services, and the events it wrote.
    browser.click("#saga-trace");
    browser.wait_for(
        "document.querySelector('#trace') && "
        "new Set([...document.querySelectorAll('#waterfall .row[data-service]')]"
        ".map(r => r.dataset.service)).size >= 2 && "
        "document.querySelectorAll('#waterfall .row[data-event]').length >= 1");
    EXPECT_GE(browser
                  .evaluate("document.querySelectorAll('#waterfall "
                            ".row[data-service=\"ordo-command\"]').length")
                  .get<int>(),
              1);
    browser.screenshot(output_path("trace.png"));

    // The parked letter: its error shown as text, then fixed and retried until it settles.
    const auto row = "#dead-letters tr[data-letter-id=\"" + std::to_string(scene.letter_id) + "\"]";
    browser.open(stack.console_url() + "#/dead-letters/all");
    browser.wait_for("document.querySelector('" + row + "[data-status=\"parked\"]')");
    EXPECT_NE(text_of(browser, row + " .letter-error").find("<img src=x"), std::string::npos);
    EXPECT_TRUE(browser
                    .evaluate("window.__pwned === undefined && "
                              "!document.querySelector('#main img')")
                    .get<bool>());
    browser.screenshot(output_path("dead-letters-parked.png"));
    drop_poison_trigger(stack.db());
    browser.click(row + " button.retry");
    browser.wait_for("document.querySelector('" + row + "[data-status=\"resolved\"]')", 60s);
    EXPECT_NE(text_of(browser, "#status")
                  .find("Dead letter " + std::to_string(scene.letter_id) + ": retry_requested"),
              std::string::npos)
        << text_of(browser, "#status");
    // Applied at last. (The order stays pending: its confirmation, applied while the order
    // was missing, changed nothing. The skip policy leaves that to the operator.)
    auto order = stack.read("/v1/orders/o-poison");
    EXPECT_TRUE(order.is_object()) << "the retried letter was not applied";
    browser.screenshot(output_path("dead-letters-resolved.png"));

    // A phone: the page fits its width; wide tables scroll inside their own boxes.
    browser.resize(390, 844);
    browser.open(stack.console_url() + "#/projections");
    browser.wait_for("document.querySelector('#projections')");
    EXPECT_LE(browser.evaluate("document.documentElement.scrollWidth").get<int>(),
              browser.evaluate("window.innerWidth").get<int>());
    browser.screenshot(output_path("phone.png"));

    EXPECT_TRUE(browser.page_errors().empty()) << json(browser.page_errors()).dump();
}

TEST(ConsoleBrowser, ATokenWithoutTheAdminScopeSeesWhyAndNoActions) {
    if (!browser_available()) GTEST_SKIP() << "chromium is not installed (deploy/install.sh)";
    ConsoleStack stack{false};
    Browser browser;
    browser.open(stack.console_url() + "#/dead-letters");
    browser.type("#token", kViewer);
    browser.click("#token-form button[type=submit]");
    browser.wait_for("document.querySelector('main .problem[data-status=\"403\"]')");
    EXPECT_NE(text_of(browser, "main .problem").find("scope"), std::string::npos);
    // The token stays in this tab only, and Forget removes it.
    EXPECT_EQ(browser.evaluate("sessionStorage.getItem('ordo.console.token')"), kViewer);
    browser.click("#token-forget");
    EXPECT_TRUE(browser.evaluate("sessionStorage.getItem('ordo.console.token')").is_null());
}

}  // namespace
}  // namespace ordo::testing
