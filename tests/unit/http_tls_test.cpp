// HTTPS: the server over TLS (protocol floor, limits, auth, certificate reload) and the
// outgoing client's verification, against a throwaway CA made at test time.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <tuple>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http.hpp"
#include "platform/http/http_client.hpp"
#include "platform/http/http_server.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/tls.hpp"
#include "tests/support/tokens.hpp"

namespace ordo::platform::http {
namespace {

using namespace std::chrono_literals;
using ordo::testing::eventually;
using ordo::testing::https_request;
using ordo::testing::kTls11;
using ordo::testing::kTls12;
using ordo::testing::kTls13;
using ordo::testing::parse_response;
using ordo::testing::TestPki;
using ordo::testing::TlsClientOptions;
using ordo::testing::TlsConnection;
using ordo::testing::token_set;
namespace fs = std::filesystem;

constexpr auto kGenerous = 20s;
const std::string kGetHealth = "GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n";

Router tls_router() {
    Router router;
    router.add("GET", "/healthz", Access::open, [](Request&) {
        return Response::json(200, {{"status", "ok"}});
    });
    router.add("GET", "/v1/items/{sku}", Access::read, [](Request& req) {
        return Response::json(200, {{"sku", req.params.at("sku")}, {"caller", req.caller}});
    });
    router.add("POST", "/echo", Access::open, [](Request& req) {
        return Response::json(200, {{"body", req.body}, {"host", req.header("host").value_or("")}});
    });
    return router;
}

class TlsServer {
   public:
    TlsServer(const TestPki::Issued& identity, ServerOptions options = {}) {
        options.tls = {.certificate_chain_file = identity.cert_file,
                       .private_key_file = identity.key_file};
        server_ = std::make_unique<Server>(std::move(options), tls_router(), Logger::null_logger(),
                                           registry_);
        server_->start();
    }
    ~TlsServer() { server_->stop(); }

    std::uint16_t port() const { return server_->port(); }
    Server& server() { return *server_; }
    double metric(const std::string& series) {
        auto text = registry_.render();
        auto at = text.find("\n" + series + " ");
        return at == std::string::npos ? -1 : std::stod(text.substr(at + series.size() + 2));
    }
    double handshake_failures() {
        return metric("ordo_http_tls_handshake_failures_total{component=\"http\"}");
    }
    double rejected(const std::string& reason) {
        return metric("ordo_http_rejected_total{component=\"http\",reason=\"" + reason + "\"}");
    }

   private:
    metrics::Registry registry_;
    std::unique_ptr<Server> server_;
};

// A TLS connection to `server` from `options`, handshake done (asserted by the caller).
std::unique_ptr<TlsConnection> connect(std::uint16_t port, const std::string& ca_file,
                                       TlsClientOptions options = {}) {
    options.ca_file = ca_file;
    options.server_name = "localhost";
    return std::make_unique<TlsConnection>(port, options);
}

TEST(HttpsServer, AnswersOverTls12AndTls13WithItsCertificate) {
    TestPki pki;
    auto identity = pki.issue();
    TlsServer server{identity};
    for (int version : {kTls12, kTls13}) {
        auto c =
            connect(server.port(), pki.ca_file(), {.min_version = version, .max_version = version});
        ASSERT_TRUE(c->handshake()) << c->error();
        EXPECT_EQ(c->protocol(), version == kTls12 ? "TLSv1.2" : "TLSv1.3");
        EXPECT_EQ(c->peer_serial(), identity.serial);
        auto res = parse_response(c->exchange(kGetHealth));
        EXPECT_EQ(res.status, 200) << res.body;
        // Keep-alive works over TLS as over plain HTTP.
        EXPECT_EQ(parse_response(c->exchange(kGetHealth)).status, 200);
    }
    EXPECT_EQ(server.handshake_failures(), 0);
}

TEST(HttpsServer, RefusesTls11AndCountsTheFailedHandshake) {
    TestPki pki;
    TlsServer server{pki.issue()};
    auto old =
        connect(server.port(), pki.ca_file(), {.min_version = kTls11, .max_version = kTls11});
    EXPECT_FALSE(old->handshake());
    // The alert is the server's: this client offered TLS 1.1 and nothing else.
    EXPECT_NE(old->error().find("protocol version"), std::string::npos) << old->error();
    ASSERT_TRUE(eventually([&] { return server.handshake_failures() == 1; }, 20s));
    auto modern = connect(server.port(), pki.ca_file());
    ASSERT_TRUE(modern->handshake()) << modern->error();
    EXPECT_EQ(parse_response(modern->exchange(kGetHealth)).status, 200);
}

TEST(HttpsServer, PlainHttpToTheTlsPortGetsNoHttpAnswerAndHarmsNothing) {
    TestPki pki;
    TlsServer server{pki.issue()};
    auto answer = ordo::testing::raw_exchange("127.0.0.1", server.port(), kGetHealth, kGenerous);
    EXPECT_EQ(answer.find("HTTP/1.1"), std::string::npos) << answer;
    ASSERT_TRUE(eventually([&] { return server.handshake_failures() == 1; }, 20s));
    EXPECT_EQ(https_request(server.port(), pki.ca_file(), "GET", "/healthz").status, 200);
    // Every connection, the refused one included, is released.
    EXPECT_TRUE(eventually(
        [&] { return server.metric("ordo_http_connections{component=\"http\"}") == 0; }, 20s));
}

TEST(HttpsServer, AStalledHandshakeIsCutAtTheReadTimeout) {
    TestPki pki;
    ServerOptions options;
    options.read_timeout = 300ms;
    TlsServer server{pki.issue(), options};
    // A client that connects and never says hello: the server must end it, not wait.
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in to{};
    to.sin_family = AF_INET;
    to.sin_port = htons(server.port());
    ::inet_pton(AF_INET, "127.0.0.1", &to.sin_addr);
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&to), sizeof to), 0);
    timeval tv{static_cast<time_t>(std::chrono::seconds(kGenerous).count()), 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    char byte = 0;
    const auto n = ::recv(fd, &byte, 1, 0);
    ::close(fd);
    EXPECT_EQ(n, 0) << "the server closed the connection (not our receive timeout)";
    ASSERT_TRUE(eventually([&] { return server.handshake_failures() == 1; }, 20s));
    ASSERT_TRUE(eventually(
        [&] { return server.metric("ordo_http_connections{component=\"http\"}") == 0; }, 20s));
    EXPECT_EQ(https_request(server.port(), pki.ca_file(), "GET", "/healthz").status, 200);
}

TEST(HttpsServer, ThePerClientCapCountsTlsConnections) {
    TestPki pki;
    ServerOptions options;
    options.max_connections_per_client = 1;
    TlsServer server{pki.issue(), options};
    auto first = connect(server.port(), pki.ca_file(), {.source_address = "127.0.0.2"});
    ASSERT_TRUE(first->handshake()) << first->error();
    ASSERT_EQ(parse_response(first->exchange(kGetHealth)).status, 200);  // held, kept alive
    auto second = connect(server.port(), pki.ca_file(), {.source_address = "127.0.0.2"});
    ASSERT_TRUE(second->handshake()) << second->error();
    auto refused = parse_response(second->read_to_end());
    EXPECT_EQ(refused.status, 503) << refused.body;
    EXPECT_EQ(server.rejected("client_connection_limit"), 1);
    auto other = connect(server.port(), pki.ca_file(), {.source_address = "127.0.0.3"});
    ASSERT_TRUE(other->handshake()) << other->error();
    EXPECT_EQ(parse_response(other->exchange(kGetHealth)).status, 200);
}

TEST(HttpsServer, LimitsAndTimeoutsAnswerAsOverPlainHttp) {
    TestPki pki;
    ServerOptions options;
    options.max_header_bytes = 1024;
    options.max_body_bytes = 16;
    options.read_timeout = 500ms;
    TlsServer server{pki.issue(), options};
    auto big_header = connect(server.port(), pki.ca_file());
    ASSERT_TRUE(big_header->handshake());
    auto h = parse_response(big_header->exchange(
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nX: " + std::string(2048, 'a') + "\r\n\r\n"));
    EXPECT_EQ(h.status, 431) << h.body;

    auto big_body = connect(server.port(), pki.ca_file());
    ASSERT_TRUE(big_body->handshake());
    auto b = parse_response(
        big_body->exchange("POST /echo HTTP/1.1\r\nHost: localhost\r\nContent-Length: 100\r\n\r\n" +
                           std::string(100, 'x')));
    EXPECT_EQ(b.status, 413) << b.body;

    auto stalled = connect(server.port(), pki.ca_file());
    ASSERT_TRUE(stalled->handshake());
    auto t = parse_response(stalled->exchange("GET /healthz HTTP/1.1\r\nHost: loc"));
    EXPECT_EQ(t.status, 408) << t.body;
}

TEST(HttpsServer, TokensAndScopesAreCheckedAsOverPlainHttp) {
    TestPki pki;
    ServerOptions options;
    options.tokens =
        token_set({{"reader", "read", "read-token"}, {"loader", "commands", "cmd-token"}});
    TlsServer server{pki.issue(), options};
    EXPECT_EQ(https_request(server.port(), pki.ca_file(), "GET", "/v1/items/a").status, 401);
    EXPECT_EQ(https_request(server.port(), pki.ca_file(), "GET", "/v1/items/a", {},
                            {{"Authorization", "Bearer cmd-token"}})
                  .status,
              403);
    EXPECT_EQ(https_request(server.port(), pki.ca_file(), "GET", "/%761/items/a", {},
                            {{"Authorization", "Bearer cmd-token"}})
                  .status,
              403);
    auto ok = https_request(server.port(), pki.ca_file(), "GET", "/v1/items/a", {},
                            {{"Authorization", "Bearer read-token"}});
    ASSERT_EQ(ok.status, 200) << ok.body;
    EXPECT_EQ(ok.json()["caller"], "reader");
}

void copy_identity(const TestPki::Issued& from, const std::string& cert, const std::string& key) {
    fs::copy_file(from.cert_file, cert, fs::copy_options::overwrite_existing);
    fs::copy_file(from.key_file, key, fs::copy_options::overwrite_existing);
}

TEST(HttpsServer, ReloadServesTheNewCertificateToNewConnectionsAndABadOneChangesNothing) {
    TestPki pki;
    auto first = pki.issue();
    auto second = pki.issue();
    const std::string cert = (pki.dir() / "server.crt").string();
    const std::string key = (pki.dir() / "server.key").string();
    copy_identity(first, cert, key);
    TlsServer server{{cert, key, ""}};
    auto before = connect(server.port(), pki.ca_file());
    ASSERT_TRUE(before->handshake());
    EXPECT_EQ(before->peer_serial(), first.serial);
    ASSERT_EQ(parse_response(before->exchange(kGetHealth)).status, 200);

    copy_identity(second, cert, key);
    server.server().reload_tls();
    auto after = connect(server.port(), pki.ca_file());
    ASSERT_TRUE(after->handshake());
    EXPECT_EQ(after->peer_serial(), second.serial);
    // The connection made before keeps serving on its own session.
    EXPECT_EQ(parse_response(before->exchange(kGetHealth)).status, 200);

    // A key that is not the certificate's, then garbage: each refused, nothing changes.
    fs::copy_file(first.key_file, key, fs::copy_options::overwrite_existing);
    EXPECT_THROW(server.server().reload_tls(), std::runtime_error);
    fs::copy_file(second.key_file, key, fs::copy_options::overwrite_existing);
    std::ofstream{cert, std::ios::trunc} << "not a certificate\n";
    try {
        server.server().reload_tls();
        ADD_FAILURE() << "a garbage certificate was loaded";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find(cert), std::string::npos) << e.what();
    }
    auto still = connect(server.port(), pki.ca_file());
    ASSERT_TRUE(still->handshake()) << still->error();
    EXPECT_EQ(still->peer_serial(), second.serial);
    EXPECT_EQ(parse_response(still->exchange(kGetHealth)).status, 200);
}

TEST(HttpsServer, StartRefusesAnIdentityThatDoesNotLoad) {
    TestPki pki;
    auto a = pki.issue();
    auto b = pki.issue();
    metrics::Registry registry;
    for (const auto& [cert, key, named] :
         std::vector<std::tuple<std::string, std::string, std::string>>{
             {a.cert_file, b.key_file, b.key_file},
             {(pki.dir() / "missing.crt").string(), a.key_file, "missing.crt"},
             {a.cert_file, "", "both"}}) {
        ServerOptions options;
        options.tls = {.certificate_chain_file = cert, .private_key_file = key};
        Server server{options, tls_router(), Logger::null_logger(), registry};
        try {
            server.start();
            ADD_FAILURE() << "started with " << cert << " and " << key;
        } catch (const std::runtime_error& e) {
            EXPECT_NE(std::string(e.what()).find(named), std::string::npos) << e.what();
        }
    }
}

// --- the outgoing client ------------------------------------------------------------------

TEST(HttpsClient, PostsOverTlsVerifiedAgainstTheGivenCa) {
    TestPki pki;
    TlsServer server{pki.issue()};
    http_client::Client client{{.ca_file = pki.ca_file()}};
    for (const std::string host : {"localhost", "127.0.0.1"}) {
        auto res = client.post("https://" + host + ":" + std::to_string(server.port()) + "/echo",
                               {{"Content-Type", "text/plain"}}, "hello", kGenerous);
        ASSERT_EQ(res.status, 200) << res.body;
        EXPECT_EQ(nlohmann::json::parse(res.body)["body"], "hello");
    }
}

TEST(HttpsClient, RefusesAServerItCannotVerifyAsPermanent) {
    TestPki pki;
    TestPki other;
    TlsServer server{pki.issue()};
    const auto url = "https://localhost:" + std::to_string(server.port()) + "/echo";
    // Not in the system's store, nor in another CA's file.
    for (const auto& client :
         {http_client::Client{}, http_client::Client{{.ca_file = other.ca_file()}}}) {
        try {
            client.post(url, {}, "x", kGenerous);
            ADD_FAILURE() << "an untrusted certificate was accepted";
        } catch (const http_client::Untrusted& e) {
            EXPECT_NE(std::string(e.what()).find("not trusted"), std::string::npos) << e.what();
        }
    }
    // Trusted CA, but a certificate for another name (and not for this address).
    TlsServer elsewhere{pki.issue({"DNS:other.example"})};
    http_client::Client trusting{{.ca_file = pki.ca_file()}};
    for (const std::string host : {"localhost", "127.0.0.1"}) {
        EXPECT_THROW(
            trusting.post("https://" + host + ":" + std::to_string(elsewhere.port()) + "/echo", {},
                          "x", kGenerous),
            http_client::Untrusted);
    }
    EXPECT_THROW(http_client::Client({.ca_file = (pki.dir() / "missing.pem").string()}),
                 InvalidInput);
}

TEST(HttpsClient, AServerThatDoesNotSpeakTlsIsUnavailable) {
    metrics::Registry registry;
    Server plain{{}, tls_router(), Logger::null_logger(), registry};
    plain.start();
    http_client::Client client;
    EXPECT_THROW(client.post("https://127.0.0.1:" + std::to_string(plain.port()) + "/echo", {}, "x",
                             kGenerous),
                 Unavailable);
    plain.stop();
}

}  // namespace
}  // namespace ordo::platform::http
