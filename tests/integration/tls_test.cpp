// TLS end to end: `ordo serve` over HTTPS with its certificate reloaded on SIGHUP, and
// webhook deliveries over HTTPS, signed, to a receiver that verifies both.
#include <gtest/gtest.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>

#include <nlohmann/json.hpp>

#include "eventstore/event_store.hpp"
#include "platform/core/metrics.hpp"
#include "platform/core/trace.hpp"
#include "platform/http/http_server.hpp"
#include "platform/pg/pg.hpp"
#include "projections/runtime.hpp"
#include "projections/webhook.hpp"
#include "projections/webhook_signature.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/process.hpp"
#include "tests/support/projector.hpp"
#include "tests/support/test_database.hpp"
#include "tests/support/tls.hpp"
#include "tests/support/tokens.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
namespace fs = std::filesystem;

void write_file(const fs::path& path, const std::string& text, mode_t mode = 0600) {
    std::ofstream{path, std::ios::trunc} << text;
    ::chmod(path.c_str(), mode);
}

void copy_identity(const TestPki::Issued& from, const std::string& cert, const std::string& key) {
    fs::copy_file(from.cert_file, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(from.key_file, key, fs::copy_options::overwrite_existing);
}

std::map<std::string, std::string> service_env(TestDatabase& db) {
    auto env = spawned_service_env(db);
    env.merge(std::map<std::string, std::string>{{"ORDO_PARTITIONS", "4"},
                                                 {"ORDO_API_TOKENS", ""},
                                                 {"ORDO_API_TOKENS_FILE", ""},
                                                 {"ORDO_TLS_CERT_FILE", ""},
                                                 {"ORDO_TLS_KEY_FILE", ""},
                                                 {"ORDO_LOG_LEVEL", "warn"}});
    return env;
}

// The token file line for `token`, as `ordo token new` prints it.
std::string token_line(const std::string& name, const std::string& scopes,
                       const std::string& token) {
    return name + " " + scopes + " " + platform::http::to_hex(platform::http::sha256(token)) + "\n";
}

// The serial of the certificate a new TLS connection to `port` is shown; "" when none.
std::string serial_on(std::uint16_t port, const std::string& ca_file) {
    try {
        TlsConnection c{port, {.ca_file = ca_file, .server_name = "localhost"}, 5s};
        return c.handshake() ? c.peer_serial() : "";
    } catch (const std::exception&) {
        return "";
    }
}

TEST(ServeTls, RefusesHalfOrBrokenSettingsAndPlainHttpBeyondLoopback) {
    TestDatabase db;
    TestPki pki;
    const auto a = pki.issue();
    const auto b = pki.issue();
    const auto tokens = pki.dir() / "tokens";
    write_file(tokens, token_line("loader", "commands", "t-1"));
    const auto garbage = pki.dir() / "garbage.crt";
    write_file(garbage, "-----BEGIN CERTIFICATE-----\nnot one\n-----END CERTIFICATE-----\n");

    struct Case {
        std::string why;
        std::vector<std::string> args;
    };
    for (const char* service : {"command", "query"}) {
        const std::string loopback = "127.0.0.1:" + std::to_string(free_port());
        for (const auto& c : std::vector<Case>{
                 {"a certificate without its key", {"--tls-cert-file", a.cert_file}},
                 {"a key without its certificate", {"--tls-key-file", a.key_file}},
                 {"another certificate's key",
                  {"--tls-cert-file", a.cert_file, "--tls-key-file", b.key_file}},
                 {"a certificate file that is not one",
                  {"--tls-cert-file", garbage.string(), "--tls-key-file", a.key_file}},
                 {"a missing certificate file",
                  {"--tls-cert-file", (pki.dir() / "nope.crt").string(), "--tls-key-file",
                   a.key_file}}}) {
            SCOPED_TRACE(std::string(service) + ": " + c.why);
            auto env = service_env(db);
            env["ORDO_API_TOKENS_FILE"] = tokens.string();
            std::vector<std::string> argv{ordo_binary(), "serve", service, "--address", loopback};
            argv.insert(argv.end(), c.args.begin(), c.args.end());
            Process p{argv, env};
            const auto status = p.wait(60s);
            ASSERT_TRUE(status.has_value()) << "still running";
            EXPECT_NE(*status, 0);
        }
        // Bearer tokens on plain HTTP beyond loopback: refused, unless a proxy is said to
        // terminate TLS in front.
        const auto port = free_port();
        auto env = service_env(db);
        env["ORDO_API_TOKENS_FILE"] = tokens.string();
        const std::string everywhere = "0.0.0.0:" + std::to_string(port);
        Process refused{{ordo_binary(), "serve", service, "--address", everywhere}, env};
        EXPECT_EQ(refused.wait(60s), 1);
        Process proxied{
            {ordo_binary(), "serve", service, "--address", everywhere, "--insecure-no-tls"}, env};
        EXPECT_TRUE(wait_healthy(port));
        proxied.signal(SIGTERM);
        EXPECT_EQ(proxied.wait(60s), 0);
    }
}

TEST(ServeTls, AHangUpSwapsTheCertificateAndABadOneKeepsTheOld) {
    TestDatabase db;
    TestPki pki;
    const auto first = pki.issue();
    const auto second = pki.issue();
    const auto third = pki.issue();
    const std::string cert = (pki.dir() / "server.crt").string();
    const std::string key = (pki.dir() / "server.key").string();
    copy_identity(first, cert, key);
    const auto tokens = pki.dir() / "tokens";
    write_file(tokens, token_line("loader", "commands", "t-1"));

    const auto port = free_port();
    auto env = service_env(db);
    env["ORDO_API_TOKENS_FILE"] = tokens.string();
    env["ORDO_TLS_CERT_FILE"] = cert;
    env["ORDO_TLS_KEY_FILE"] = key;
    Process service{
        {ordo_binary(), "serve", "command", "--address", "127.0.0.1:" + std::to_string(port)}, env};
    ASSERT_TRUE(eventually([&] { return serial_on(port, pki.ca_file()) == first.serial; }, 60s));
    ASSERT_TRUE(eventually(
        [&] { return https_request(port, pki.ca_file(), "GET", "/healthz").status == 200; }, 60s));

    // The API over TLS: the token check as ever.
    const std::string receipt = R"({"quantity": 2})";
    const HttpHeaders json{{"Content-Type", "application/json"}};
    EXPECT_EQ(
        https_request(port, pki.ca_file(), "POST", "/v1/inventory/s-1/receipts", receipt, json)
            .status,
        401);
    HttpHeaders authorized = json;
    authorized.emplace_back("Authorization", "Bearer t-1");
    EXPECT_EQ(https_request(port, pki.ca_file(), "POST", "/v1/inventory/s-1/receipts", receipt,
                            authorized)
                  .status,
              200);

    // Renewed: the new certificate goes in place, a hang-up, and new connections see it.
    copy_identity(second, cert, key);
    service.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return serial_on(port, pki.ca_file()) == second.serial; }, 30s));

    // A bad replacement (a key that is not the certificate's, then no certificate at all):
    // each reload fails, is counted, and the second certificate stays in use.
    fs::copy_file(third.cert_file, cert, fs::copy_options::overwrite_existing);
    service.signal(SIGHUP);
    auto failed_reloads = [&] {
        auto m = https_request(port, pki.ca_file(), "GET", "/metrics");
        const std::string series = "ordo_tls_reloads_total{outcome=\"failed\"} ";
        auto at = m.body.find(series);
        return at == std::string::npos ? -1 : std::stoi(m.body.substr(at + series.size()));
    };
    ASSERT_TRUE(eventually([&] { return failed_reloads() == 1; }, 30s));
    EXPECT_EQ(serial_on(port, pki.ca_file()), second.serial);
    fs::remove(cert);
    service.signal(SIGHUP);
    ASSERT_TRUE(eventually([&] { return failed_reloads() == 2; }, 30s));
    EXPECT_EQ(serial_on(port, pki.ca_file()), second.serial);
    EXPECT_EQ(https_request(port, pki.ca_file(), "POST", "/v1/inventory/s-1/receipts", receipt,
                            authorized)
                  .status,
              200);
    EXPECT_EQ(service.wait(0ms), std::nullopt);  // still running
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM ordo.events"), 2);
}

// --- webhooks over HTTPS ----------------------------------------------------------------

constexpr const char* kSecret = "whsec_dGVzdC1zZWNyZXQtb2YtdGhlLXdlYmhvb2stdGVzdA==";

// HMAC-SHA256 in the receiver's own words (OpenSSL's EVP_MAC): what a Standard Webhooks
// receiver library checks, computed without Ordo's signing code.
std::string expected_signature(const std::string& id, const std::string& timestamp,
                               const std::string& body) {
    unsigned char key[64];
    const std::string encoded = std::string(kSecret).substr(6);
    int key_length = EVP_DecodeBlock(key, reinterpret_cast<const unsigned char*>(encoded.data()),
                                     static_cast<int>(encoded.size()));
    key_length -= static_cast<int>(std::count(encoded.end() - 2, encoded.end(), '='));
    const std::string content = id + "." + timestamp + "." + body;
    unsigned char mac[EVP_MAX_MD_SIZE];
    std::size_t mac_length = 0;
    EVP_MAC* hmac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
    EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(hmac);
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string("digest", digest, 0),
                           OSSL_PARAM_construct_end()};
    EVP_MAC_init(ctx, key, static_cast<std::size_t>(key_length), params);
    EVP_MAC_update(ctx, reinterpret_cast<const unsigned char*>(content.data()), content.size());
    EVP_MAC_final(ctx, mac, &mac_length, sizeof mac);
    EVP_MAC_CTX_free(ctx);
    EVP_MAC_free(hmac);
    unsigned char b64[128];
    const int n = EVP_EncodeBlock(b64, mac, static_cast<int>(mac_length));
    return "v1," + std::string(reinterpret_cast<char*>(b64), static_cast<std::size_t>(n));
}

// An HTTPS webhook receiver that accepts a delivery only when its signature verifies.
class SignedReceiver {
   public:
    explicit SignedReceiver(const TestPki::Issued& identity) {
        platform::http::Router router;
        router.add("POST", "/hook", platform::http::Access::open,
                   [this](platform::http::Request& r) {
                       const auto id = r.header("webhook-id").value_or("");
                       const auto timestamp = r.header("webhook-timestamp").value_or("");
                       const auto signature = r.header("webhook-signature").value_or("");
                       std::lock_guard lock{mutex_};
                       if (signature != expected_signature(id, timestamp, r.body) ||
                           id != r.header("ordo-event-id").value_or("-")) {
                           ++refused_;
                           return platform::http::problem(401, "unauthorized", "bad signature");
                       }
                       ids_.insert(id);
                       return platform::http::Response::json(200, {{"ok", true}});
                   });
        platform::http::ServerOptions options;
        options.tls = {.certificate_chain_file = identity.cert_file,
                       .private_key_file = identity.key_file};
        server_ = std::make_unique<platform::http::Server>(
            options, std::move(router), platform::Logger::null_logger(), metrics_);
        server_->start();
    }
    ~SignedReceiver() { server_->stop(); }
    std::string url() const {
        return "https://localhost:" + std::to_string(server_->port()) + "/hook";
    }
    std::set<std::string> ids() {
        std::lock_guard lock{mutex_};
        return ids_;
    }
    int refused() {
        std::lock_guard lock{mutex_};
        return refused_;
    }

   private:
    platform::metrics::Registry metrics_;
    std::unique_ptr<platform::http::Server> server_;
    std::mutex mutex_;
    std::set<std::string> ids_;
    int refused_ = 0;
};

std::vector<std::string> append_receipts(const TestDatabase& db, const std::string& sku, int n) {
    platform::pg::Pool pool{
        {.url = db.command_url(), .size = 1, .preparers = {&eventstore::EventStore::prepare}}};
    eventstore::EventStore store{pool};
    auto trace = platform::new_trace();
    std::vector<std::string> ids;
    for (int i = 1; i <= n; ++i) {
        auto id = platform::new_uuid();
        store.append("inventory-" + sku, eventstore::ExpectedVersion::any(),
                     {{id,
                       "StockReceived",
                       {{"sku", sku}, {"quantity", i}},
                       {trace.trace_id_hex(), trace.span_id_hex(), "", "", "", "test"}}});
        ids.push_back(id);
    }
    return ids;
}

projections::RuntimeOptions webhook_options(const TestDatabase& db) {
    auto o = Projector::options(db, "tls-test", 4);
    o.poll_interval = 100ms;
    o.default_dead_letter_policy = projections::DeadLetterPolicy::halt;
    return o;
}

TEST(WebhookTls, TheProjectorRefusesASecretOthersCanReadOrThatIsNotOne) {
    TestDatabase db;
    TestPki pki;
    const auto good = pki.dir() / "secret";
    write_file(good, std::string(kSecret) + "\n");
    const auto readable = pki.dir() / "readable";
    write_file(readable, std::string(kSecret) + "\n", 0640);
    const auto raw = pki.dir() / "raw";
    write_file(raw, "correct horse battery staple\n");
    struct Case {
        std::string why;
        std::map<std::string, std::string> env;
    };
    for (const auto& c : std::vector<Case>{
             {"a secret the group may read", {{"ORDO_WEBHOOK_SECRET_FILE", readable.string()}}},
             {"a secret that is not whsec_", {{"ORDO_WEBHOOK_SECRET_FILE", raw.string()}}},
             {"a missing secret file",
              {{"ORDO_WEBHOOK_SECRET_FILE", (pki.dir() / "missing").string()}}},
             {"a CA file that does not load",
              {{"ORDO_WEBHOOK_SECRET_FILE", good.string()},
               {"ORDO_TLS_CA_FILE", (pki.dir() / "missing.pem").string()}}}}) {
        SCOPED_TRACE(c.why);
        auto env = service_env(db);
        env["ORDO_WEBHOOK_URL"] = "https://localhost:1/hook";
        env["ORDO_TLS_CA_FILE"] = "";
        for (const auto& [k, v] : c.env) env[k] = v;
        Process p{{ordo_binary(), "serve", "projector", "--address",
                   "127.0.0.1:" + std::to_string(free_port())},
                  env};
        EXPECT_EQ(p.wait(60s), 2);
    }
}

TEST(WebhookTls, DeliversOverHttpsSignedSoTheReceiverCanVerify) {
    TestDatabase db;
    TestPki pki;
    SignedReceiver receiver{pki.issue()};
    std::vector<std::unique_ptr<projections::Projection>> models;
    models.push_back(std::make_unique<projections::WebhookProjection>(projections::WebhookOptions{
        .url = receiver.url(),
        .timeout = 5s,
        .ca_file = pki.ca_file(),
        .signing_keys = projections::webhook_signature::parse_secrets(kSecret)}));
    Projector projector{webhook_options(db), std::move(models)};
    const auto ids = append_receipts(db, "tls-1", 5);
    ASSERT_TRUE(eventually([&] { return receiver.ids().size() == ids.size(); }, 60s));
    EXPECT_EQ(receiver.ids(), std::set<std::string>(ids.begin(), ids.end()));
    EXPECT_EQ(receiver.refused(), 0);
    EXPECT_EQ(scalar(db.migrator_url(), "SELECT count(*) FROM ordo.dead_letters"), 0);
}

TEST(WebhookTls, AReceiverWithAnUntrustedCertificateGetsNothingAndTheEventIsParked) {
    TestDatabase db;
    TestPki pki;
    SignedReceiver receiver{pki.issue()};
    std::vector<std::unique_ptr<projections::Projection>> models;
    // Verified against the system's CAs, which never issued the test CA's certificate.
    models.push_back(std::make_unique<projections::WebhookProjection>(projections::WebhookOptions{
        .url = receiver.url(),
        .timeout = 5s,
        .signing_keys = projections::webhook_signature::parse_secrets(kSecret)}));
    Projector projector{webhook_options(db), std::move(models)};
    append_receipts(db, "tls-2", 3);
    // Permanent, not retried forever: the first event is parked and its partition halts.
    ASSERT_TRUE(eventually(
        [&] {
            return scalar(db.migrator_url(),
                          "SELECT count(*) FROM ordo.dead_letters WHERE error LIKE "
                          "'%certificate%not trusted%'") == 1;
        },
        60s));
    EXPECT_TRUE(receiver.ids().empty());
    EXPECT_EQ(receiver.refused(), 0);
}

}  // namespace
}  // namespace ordo::testing
