// Observability: one order is one trace through every service, in their logs and exported spans.

#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <mutex>
#include <regex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "platform/core/log.hpp"
#include "platform/core/trace.hpp"
#include "platform/nats/jetstream.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/otlp_receiver.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using nlohmann::json;

bool lower_hex(const std::string& s, std::size_t length) {
    static const std::regex kHex{"[0-9a-f]+"};
    return s.size() == length && std::regex_match(s, kHex) && s != std::string(length, '0');
}

// Every Ordo service as a process over one test database and its own JetStream stream, with
// debug logs in a file per service and spans exported to a local OTLP receiver.
class TracedStack {
   public:
    static constexpr const char* kServices[] = {"command", "query", "relay", "projector", "sagas"};

    TracedStack() {
        const auto suffix = platform::new_uuid().substr(0, 8);
        stream_ = "OB_" + suffix;
        prefix_ = "ob" + suffix + ".events";
        logs_ = std::filesystem::temp_directory_path() / ("ordo-observability-" + suffix);
        std::filesystem::create_directories(logs_);
        auto env = db_.service_env();  // each service on its own role
        env.merge(std::map<std::string, std::string>{
            {"ORDO_NATS_URL", nats_admin_url()},
            {"ORDO_NATS_CA_FILE", nats_ca_file()},
            {"ORDO_PARTITIONS", "4"},
            {"ORDO_NATS_STREAM", stream_},
            {"ORDO_NATS_SUBJECT_PREFIX", prefix_},
            {"ORDO_BREAKER_BUCKET", ""},
            {"ORDO_LOG_LEVEL", "debug"},
            {"OTEL_EXPORTER_OTLP_ENDPOINT", receiver_.endpoint()}});
        for (const char* service : kServices) {
            auto port = free_port();
            ports_[service] = port;
            std::vector<std::string> argv{"/bin/sh",
                                          "-c",
                                          "exec \"$0\" \"$@\" 2>>'" + log_path(service) + "'",
                                          ordo_binary(),
                                          "serve",
                                          service,
                                          "--address",
                                          "127.0.0.1:" + std::to_string(port)};
            if (std::string{service} == "command" || std::string{service} == "query") {
                argv.push_back("--insecure-no-auth");
            }
            processes_.push_back(std::make_unique<Process>(argv, env));
        }
        for (const auto& [service, port] : ports_) {
            if (!wait_healthy(port)) throw std::runtime_error(service + " did not come up");
        }
    }
    ~TracedStack() {
        for (auto& p : processes_) p->signal(SIGTERM);
        for (auto& p : processes_) p->wait(15s);
        std::error_code ignored;
        std::filesystem::remove_all(logs_, ignored);
    }

    HttpClient client(const std::string& service) const {
        return HttpClient{"127.0.0.1", ports_.at(service)};
    }
    std::string log_path(const std::string& service) const {
        return (logs_ / (service + ".log")).string();
    }
    // The log lines of `service`, each parsed; a line that is not JSON fails the test.
    std::vector<json> log_lines(const std::string& service) const {
        std::vector<json> out;
        std::ifstream in{log_path(service)};
        for (std::string line; std::getline(in, line);) {
            auto j = json::parse(line, nullptr, false);
            EXPECT_FALSE(j.is_discarded()) << service << " wrote a line that is not JSON: " << line;
            if (!j.is_discarded()) out.push_back(std::move(j));
        }
        return out;
    }
    bool logged_trace(const std::string& service, const std::string& trace_id) const {
        for (const auto& line : log_lines(service)) {
            if (line.value("trace_id", "") == trace_id) return true;
        }
        return false;
    }

    const TestDatabase& db() const { return db_; }
    const OtlpReceiver& receiver() const { return receiver_; }
    const std::string& stream() const { return stream_; }
    const std::string& prefix() const { return prefix_; }

   private:
    OtlpReceiver receiver_;
    TestDatabase db_;
    std::string stream_, prefix_;
    std::filesystem::path logs_;
    std::map<std::string, std::uint16_t> ports_;
    std::vector<std::unique_ptr<Process>> processes_;
};

struct StoredEvent {
    std::string event_id, stream, type;
    std::int64_t version = 0;
    json metadata;
};

std::vector<StoredEvent> events_of_trace(const std::string& url, const std::string& trace_id) {
    pqxx::connection conn{url};
    pqxx::nontransaction tx{conn};
    std::vector<StoredEvent> out;
    for (const auto& row : tx.exec_params(
             "SELECT event_id::text, stream_id, event_type, stream_version, metadata::text "
             "FROM ordo.events WHERE metadata->>'trace_id' = $1 "
             "ORDER BY transaction_id, global_position",
             trace_id)) {
        out.push_back({row[0].as<std::string>(), row[1].as<std::string>(), row[2].as<std::string>(),
                       row[3].as<std::int64_t>(), json::parse(row[4].as<std::string>())});
    }
    return out;
}

TEST(Observability, OneOrderIsOneTraceThroughEveryComponent) {
    TracedStack stack;
    const auto trace_id = platform::new_trace().trace_id_hex();
    const std::string client_span = "00f067aa0ba902b7";
    const std::string traceparent = "00-" + trace_id + "-" + client_span + "-01";
    const std::string order_id = "o-obs-" + platform::new_uuid().substr(0, 8);

    auto commands = stack.client("command");
    ASSERT_EQ(commands.post_json("/v1/inventory/sku-obs/receipts", {{"quantity", 10}}).status, 200);
    ASSERT_EQ(commands.post_json("/v1/accounts/acc-obs/deposits", {{"amount", 1000}}).status, 200);
    auto placed =
        commands.post_json("/v1/orders",
                           {{"order_id", order_id},
                            {"customer_id", "c-obs"},
                            {"account_id", "acc-obs"},
                            {"lines", {{{"sku", "sku-obs"}, {"quantity", 2}, {"unit_price", 30}}}}},
                           {{"traceparent", traceparent}, {"tracestate", "vendor=opaque"}});
    ASSERT_EQ(placed.status, 202) << placed.body;
    auto server_span = platform::TraceContext::parse(placed.header("traceparent"));
    ASSERT_TRUE(server_span);
    EXPECT_EQ(server_span->trace_id_hex(), trace_id);
    EXPECT_NE(server_span->span_id_hex(), client_span);
    EXPECT_EQ(placed.header("tracestate"), "vendor=opaque");
    const auto server_span_id = server_span->span_id_hex();

    // The order is confirmed by the saga: every command it sent has run by then.
    auto queries = stack.client("query");
    ASSERT_TRUE(eventually(
        [&] {
            auto r = queries.get("/v1/orders/" + order_id);
            return r.status == 200 && r.json()["status"] == "confirmed";
        },
        90s))
        << "the order was not confirmed";

    // The event store: the order's first event was appended by the server span; the saga's
    // events and those of the commands it sent carry the same trace.
    std::vector<StoredEvent> events;
    ASSERT_TRUE(eventually([&] {
        events = events_of_trace(stack.db().command_url(), trace_id);
        std::set<std::string> types;
        for (const auto& e : events) types.insert(e.type);
        return types.count("OrderConfirmed") > 0;
    }));
    std::map<std::string, const StoredEvent*> by_id;
    std::set<std::string> categories;
    for (const auto& e : events) {
        by_id[e.event_id] = &e;
        categories.insert(e.stream.substr(0, e.stream.find('-')));
        EXPECT_TRUE(lower_hex(e.metadata.value("span_id", ""), 16)) << e.stream;
    }
    ASSERT_FALSE(events.empty());
    EXPECT_EQ(events.front().stream, "order-" + order_id);
    EXPECT_EQ(events.front().metadata["span_id"], server_span_id);
    for (const char* category : {"order", "inventory", "account"}) {
        EXPECT_TRUE(categories.count(category)) << "no " << category << " event in the trace";
    }
    bool saga_events = false;
    for (const auto& c : categories) saga_events |= c.rfind("saga", 0) == 0;
    EXPECT_TRUE(saga_events) << "no saga event in the trace";
    // What the saga made happen names its cause: an event of the same trace.
    for (const auto& e : events) {
        if (e.stream.rfind("inventory-", 0) != 0 && e.stream.rfind("account-", 0) != 0) continue;
        auto cause = e.metadata.value("causation_id", "");
        EXPECT_TRUE(by_id.count(cause)) << e.stream << " " << e.type << " caused by '" << cause
                                        << "', not an event of the trace";
    }

    // NATS: the order's message carries the trace in its traceparent header.
    platform::jetstream::Client nats{nats_admin(), platform::Logger::null_logger()};
    std::mutex mutex;
    std::vector<platform::jetstream::Message> messages;
    auto sub = nats.subscribe_ordered(stack.stream(), stack.prefix() + ".>", std::nullopt,
                                      [&](platform::jetstream::Message m) {
                                          std::lock_guard lock{mutex};
                                          messages.push_back(std::move(m));
                                      });
    ASSERT_TRUE(eventually([&] {
        std::lock_guard lock{mutex};
        for (const auto& m : messages) {
            if (m.headers.count("ordo-stream") &&
                m.headers.at("ordo-stream") == "order-" + order_id)
                return true;
        }
        return false;
    }));
    {
        std::lock_guard lock{mutex};
        for (const auto& m : messages) {
            if (m.headers.at("ordo-stream") != "order-" + order_id) continue;
            auto header = platform::TraceContext::parse(m.headers.at("traceparent"));
            ASSERT_TRUE(header);
            EXPECT_EQ(header->trace_id_hex(), trace_id);
            if (m.headers.at("ordo-version") == "1") {
                EXPECT_EQ(header->span_id_hex(), server_span_id);
            }
        }
    }

    // The trace view lists the whole trace in commit order, with causation links.
    auto view =
        queries.get("/v1/traces/" + trace_id + "?wait_ms=10000",
                    {{"traceparent", traceparent},
                     {"X-Consistency-Token", placed.json()["position"].get<std::string>()}});
    // The saga may still be finishing: compare with the store once both agree.
    auto same_as_store = [&] {
        view = queries.get("/v1/traces/" + trace_id, {{"traceparent", traceparent}});
        events = events_of_trace(stack.db().command_url(), trace_id);
        if (view.status != 200) return false;
        auto items = view.json()["events"];
        if (items.size() != events.size()) return false;
        for (std::size_t i = 0; i < events.size(); ++i) {
            const auto& item = items[i];
            if (item["stream"] != events[i].stream || item["version"] != events[i].version) {
                return false;
            }
        }
        return true;
    };
    ASSERT_TRUE(eventually(same_as_store, 60s)) << view.body;
    auto listed = view.json();
    EXPECT_EQ(listed["trace_id"], trace_id);
    for (std::size_t i = 0; i < events.size(); ++i) {
        const auto& item = listed["events"][i];
        EXPECT_EQ(item["stream"], events[i].stream) << i;
        EXPECT_EQ(item["version"], events[i].version) << i;
        EXPECT_EQ(item["type"], events[i].type) << i;
        for (const char* field : {"position", "recorded_at", "causation_id", "correlation_id"}) {
            EXPECT_TRUE(item.contains(field)) << field;
        }
        auto cause = events[i].metadata.value("causation_id", "");
        if (!cause.empty()) {
            EXPECT_EQ(item["causation_id"], cause) << i;
        }
    }

    // Logs: every component involved wrote JSON lines with this trace id.
    for (const char* service : TracedStack::kServices) {
        EXPECT_TRUE(eventually([&] { return stack.logged_trace(service, trace_id); }, 30s))
            << service << " logged nothing with the trace id";
        for (const auto& line : stack.log_lines(service)) {
            for (const char* field : {"time", "level", "component", "message"}) {
                EXPECT_TRUE(line.contains(field)) << service << ": " << line.dump();
            }
            if (line.contains("trace_id")) {
                EXPECT_TRUE(lower_hex(line["trace_id"], 32)) << line.dump();
                EXPECT_TRUE(lower_hex(line["span_id"], 16)) << line.dump();
            }
        }
    }

    // Spans: the server span of the POST, then publish and process spans under it.
    const auto& receiver = stack.receiver();
    std::vector<json> spans;
    auto has = [&](const std::string& service, int kind) {
        for (const auto& s : spans) {
            if (s["service"] == "ordo-" + service && s["kind"] == kind) return true;
        }
        return false;
    };
    ASSERT_TRUE(eventually(
        [&] {
            spans = receiver.spans_of_trace(trace_id);
            return has("command", 2) && has("relay", 4) && has("projector", 5) && has("sagas", 5) &&
                   has("query", 2);
        },
        60s))
        << "spans of the trace: " << json(spans).dump();
    std::set<std::string> span_ids;
    for (const auto& s : spans) {
        EXPECT_TRUE(lower_hex(s["traceId"], 32));
        EXPECT_TRUE(lower_hex(s["spanId"], 16)) << s.dump();
        EXPECT_TRUE(span_ids.insert(s["spanId"].get<std::string>()).second) << "repeated span id";
        int kind = s["kind"];
        EXPECT_TRUE(kind >= 1 && kind <= 5);
        EXPECT_LE(std::stoll(s["startTimeUnixNano"].get<std::string>()),
                  std::stoll(s["endTimeUnixNano"].get<std::string>()));
    }
    const json* post = nullptr;
    for (const auto& s : spans) {
        if (s["spanId"] == server_span_id) post = &s;
    }
    ASSERT_TRUE(post) << "no span with the id the command service answered";
    EXPECT_EQ((*post)["name"], "POST /v1/orders");
    EXPECT_EQ((*post)["service"], "ordo-command");
    EXPECT_EQ((*post)["kind"], 2);
    EXPECT_EQ((*post)["parentSpanId"], client_span);
    EXPECT_EQ(OtlpReceiver::attribute(*post, "http.route")->value("stringValue", ""), "/v1/orders");
    EXPECT_EQ(OtlpReceiver::attribute(*post, "http.request.method")->value("stringValue", ""),
              "POST");
    EXPECT_EQ(OtlpReceiver::attribute(*post, "http.response.status_code")->value("intValue", ""),
              "202");
    EXPECT_EQ(OtlpReceiver::attribute(*post, "url.path")->value("stringValue", ""), "/v1/orders");
    // The order's own event: published and processed as children of the POST's span.
    bool published = false, processed = false;
    for (const auto& s : spans) {
        if (s.value("parentSpanId", "") != server_span_id) continue;
        auto stream = OtlpReceiver::attribute(s, "ordo.stream");
        if (!stream || stream->value("stringValue", "") != "order-" + order_id) continue;
        if (s["kind"] == 4) {
            published = true;
            EXPECT_EQ(OtlpReceiver::attribute(s, "messaging.system")->value("stringValue", ""),
                      "nats");
            EXPECT_EQ(s["name"].get<std::string>().rfind("publish " + stack.prefix() + ".", 0), 0u)
                << s["name"];
        }
        if (s["kind"] == 5 && s["service"] == "ordo-projector") {
            processed = true;
            EXPECT_EQ(s["name"], "process order");
        }
    }
    EXPECT_TRUE(published) << "no publish span of the order's event under the POST";
    EXPECT_TRUE(processed) << "no process span of the order's event under the POST";
    // Every parent named is a span of the trace, or the client's.
    span_ids.insert(client_span);
    std::set<std::string> event_spans;
    for (const auto& e : events) event_spans.insert(e.metadata.value("span_id", ""));
    for (const auto& s : spans) {
        auto parent = s.value("parentSpanId", "");
        if (parent.empty()) continue;
        EXPECT_TRUE(span_ids.count(parent) || event_spans.count(parent))
            << s["name"] << " names an unknown parent " << parent;
    }
}

}  // namespace
}  // namespace ordo::testing
