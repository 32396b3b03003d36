// The stack's NATS admits only TLS clients that verify its certificate and present a user of
// its config, and holds each service's user to what that service needs (deploy/stack.sh,
// docs/security.md "What NATS trusts"). Checked with cnats directly where the server's own
// answer is the point (a refused connection, a permissions violation), and with Ordo's NATS
// adapters where a service's user must be able to do its work.
#include <gtest/gtest.h>

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <mutex>
#include <string>
#include <vector>

#include <nats/nats.h>

#include "platform/core/trace.hpp"
#include "platform/nats/breaker_store.hpp"
#include "platform/nats/jetstream.hpp"
#include "platform/nats/nats_options.hpp"
#include "tests/support/conditions.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

using namespace std::chrono_literals;
using platform::nats::ClientSettings;

// The defaults the stack's users are scoped to (app/subcommands.hpp, deploy/stack.sh).
constexpr const char* kStream = "ORDO_EVENTS";
constexpr const char* kSubjects = "ordo.events";
constexpr const char* kBreakerBucket = "ordo_breakers";

// A subject of the events' namespace that no partition filter (`ordo.events.<p>.>`) of
// another test's consumer matches.
std::string own_subject(const std::string& what) {
    return std::string{kSubjects} + ".nats-security." + what + "-" +
           platform::new_uuid().substr(0, 8);
}

// A bare cnats connection that records the asynchronous errors the server sends it.
class RawClient {
   public:
    // `server_name`: the name the server's certificate must carry, instead of the URL's host.
    explicit RawClient(const ClientSettings& settings, const char* server_name = nullptr) {
        natsOptions_Create(&options_);
        platform::nats::apply(options_, settings);
        if (server_name) natsOptions_SetExpectedHostname(options_, server_name);
        natsOptions_SetTimeout(options_, 3000);
        natsOptions_SetAllowReconnect(options_, false);
        natsOptions_SetErrorHandler(options_, &RawClient::on_error, this);
        status_ = natsConnection_Connect(&conn_, options_);
        if (status_ != NATS_OK) {
            natsStatus last = NATS_OK;
            if (const char* text = nats_GetLastError(&last)) connect_error_ = text;
        }
    }
    ~RawClient() {
        for (auto* sub : subscriptions_) natsSubscription_Destroy(sub);
        if (conn_) {
            natsConnection_Close(conn_);
            natsConnection_Destroy(conn_);
        }
        natsOptions_Destroy(options_);
    }
    RawClient(const RawClient&) = delete;
    RawClient& operator=(const RawClient&) = delete;

    natsStatus status() const { return status_; }
    const std::string& connect_error() const { return connect_error_; }

    void publish(const std::string& subject) {
        ASSERT_EQ(natsConnection_PublishString(conn_, subject.c_str(), "{}"), NATS_OK);
        ASSERT_EQ(natsConnection_FlushTimeout(conn_, 5000), NATS_OK);
    }
    void subscribe(const std::string& subject) {
        natsSubscription* sub = nullptr;
        ASSERT_EQ(natsConnection_SubscribeSync(&sub, conn_, subject.c_str()), NATS_OK);
        ASSERT_EQ(natsConnection_FlushTimeout(conn_, 5000), NATS_OK);
        subscriptions_.push_back(sub);
    }

    // Whether the server reported a permissions violation whose text holds `needle`.
    bool violated(const std::string& needle) {
        return eventually(
            [&] {
                std::lock_guard lock{mutex_};
                for (const auto& e : errors_) {
                    if (e.find("Permissions Violation") != std::string::npos &&
                        e.find(needle) != std::string::npos) {
                        return true;
                    }
                }
                return false;
            },
            10s);
    }
    std::vector<std::string> errors() {
        std::lock_guard lock{mutex_};
        return errors_;
    }

   private:
    static void on_error(natsConnection* nc, natsSubscription*, natsStatus status, void* closure) {
        auto* self = static_cast<RawClient*>(closure);
        const char* text = nullptr;
        natsConnection_GetLastError(nc, &text);
        std::lock_guard lock{self->mutex_};
        self->errors_.push_back(std::string{natsStatus_GetText(status)} + ": " +
                                (text ? text : ""));
    }

    natsOptions* options_ = nullptr;
    natsConnection* conn_ = nullptr;
    natsStatus status_ = NATS_OK;
    std::string connect_error_;
    std::vector<natsSubscription*> subscriptions_;
    std::mutex mutex_;
    std::vector<std::string> errors_;
};

ClientSettings without_user() {
    return {.url = stack_setting("ORDO_NATS_URL"), .ca_file = nats_ca_file()};
}

// The default events stream as the relay creates it.
void ensure_events_stream(platform::jetstream::Client& relay) {
    relay.ensure_stream({.name = kStream, .subjects = {std::string{kSubjects} + ".>"}});
}

TEST(NatsSecurity, AClientWithoutAUserIsRefused) {
    RawClient client{without_user()};
    EXPECT_EQ(client.status(), NATS_CONNECTION_AUTH_FAILED) << client.connect_error();
}

TEST(NatsSecurity, AClientWithAWrongPasswordIsRefused) {
    auto settings = nats_user("relay");
    auto at = settings.url.rfind('@');
    auto colon = settings.url.rfind(':', at);
    settings.url = settings.url.substr(0, colon + 1) + "not-the-password" + settings.url.substr(at);
    RawClient client{settings};
    EXPECT_EQ(client.status(), NATS_CONNECTION_AUTH_FAILED) << client.connect_error();
}

TEST(NatsSecurity, AClientThatDoesNotTrustTheStackCaCannotConnect) {
    // TLS with the system's trust store only: the stack's certificate does not chain to it.
    auto settings = nats_admin();
    settings.ca_file.clear();
    RawClient client{settings};
    EXPECT_EQ(client.status(), NATS_SSL_ERROR) << client.connect_error();
    EXPECT_NE(client.connect_error().find("unable to get local issuer certificate"),
              std::string::npos)
        << client.connect_error();
}

TEST(NatsSecurity, AServerWhoseCertificateNamesAnotherHostIsRefused) {
    RawClient trusted{nats_admin()};
    EXPECT_EQ(trusted.status(), NATS_OK) << trusted.connect_error();
    RawClient misnamed{nats_admin(), "ordo-not-this-host"};
    EXPECT_EQ(misnamed.status(), NATS_SSL_ERROR) << misnamed.connect_error();
    EXPECT_NE(misnamed.connect_error().find("hostname mismatch"), std::string::npos)
        << misnamed.connect_error();
}

TEST(NatsSecurity, APlaintextClientIsRefused) {
    // Speak the protocol without TLS, with a valid user: the server announces that TLS is
    // required and never answers the PING.
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(std::stoi(stack_setting("ORDO_NATS_PORT"))));
    ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
    timeval timeout{.tv_sec = 10, .tv_usec = 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string info;
    char buffer[4096];
    while (info.find("\r\n") == std::string::npos) {  // the INFO line
        auto n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;
        info.append(buffer, static_cast<std::size_t>(n));
    }
    EXPECT_NE(info.find("\"tls_required\":true"), std::string::npos) << info;
    auto admin = nats_admin_url();
    auto user_start = admin.find("://") + 3;
    auto colon = admin.find(':', user_start);
    auto at = admin.rfind('@');
    std::string connect = "CONNECT {\"verbose\":false,\"user\":\"" +
                          admin.substr(user_start, colon - user_start) + "\",\"pass\":\"" +
                          admin.substr(colon + 1, at - colon - 1) + "\"}\r\nPING\r\n";
    (void)::write(fd, connect.data(), connect.size());
    std::string answer;
    for (;;) {
        auto n = ::read(fd, buffer, sizeof buffer);
        if (n <= 0) break;  // closed by the server (or nothing within the timeout)
        answer.append(buffer, static_cast<std::size_t>(n));
    }
    ::close(fd);
    EXPECT_EQ(answer.find("PONG"), std::string::npos) << answer;
}

TEST(NatsSecurity, TheRelayUserCreatesTheEventsStreamAndPublishesEvents) {
    platform::jetstream::Client relay{nats_user("relay"), platform::Logger::null_logger()};
    ASSERT_TRUE(eventually([&] { return relay.connected(); }, 30s));
    ensure_events_stream(relay);
    platform::jetstream::Message message{.subject = {}, .headers = {}, .data = "{}"};
    EXPECT_EQ(relay.publish_batch({{own_subject("relay"), message}}, 1, 5s), 1u);
}

TEST(NatsSecurity, TheRelayUserMayNotConsumeOrTouchOtherStreams) {
    RawClient relay{nats_user("relay")};
    ASSERT_EQ(relay.status(), NATS_OK) << relay.connect_error();
    relay.publish(std::string{"$JS.API.CONSUMER.CREATE."} + kStream);
    EXPECT_TRUE(relay.violated("$JS.API.CONSUMER.CREATE"))
        << ::testing::PrintToString(relay.errors());
    relay.publish(std::string{"$KV."} + kBreakerBucket + ".x");
    EXPECT_TRUE(relay.violated("$KV.")) << ::testing::PrintToString(relay.errors());
    relay.publish("$JS.API.STREAM.DELETE." + std::string{kStream});
    EXPECT_TRUE(relay.violated("$JS.API.STREAM.DELETE"))
        << ::testing::PrintToString(relay.errors());
}

// Each consuming service's user reads the events stream live, as the projection runtime does.
void consumes_events_as(const std::string& service) {
    platform::jetstream::Client relay{nats_user("relay"), platform::Logger::null_logger()};
    platform::jetstream::Client consumer{nats_user(service), platform::Logger::null_logger()};
    ASSERT_TRUE(eventually([&] { return relay.connected() && consumer.connected(); }, 30s));
    ensure_events_stream(relay);
    auto subject = own_subject(service);
    std::mutex mutex;
    std::vector<std::string> received;
    auto subscription = consumer.subscribe_ordered(kStream, subject, std::nullopt,
                                                   [&](platform::jetstream::Message m) {
                                                       std::lock_guard lock{mutex};
                                                       received.push_back(m.data);
                                                   });
    platform::jetstream::Message message{.subject = {}, .headers = {}, .data = "event"};
    ASSERT_EQ(relay.publish_batch({{subject, message}}, 1, 5s), 1u);
    EXPECT_TRUE(eventually(
        [&] {
            std::lock_guard lock{mutex};
            return received == std::vector<std::string>{"event"};
        },
        30s));
}

TEST(NatsSecurity, TheProjectorUserConsumesTheEventsStream) {
    consumes_events_as("projector");
}

TEST(NatsSecurity, TheSagasUserConsumesTheEventsStream) {
    consumes_events_as("sagas");
}

TEST(NatsSecurity, TheProjectorAndSagasUsersCannotPublishEvents) {
    for (const auto* service : {"projector", "sagas"}) {
        RawClient client{nats_user(service)};
        ASSERT_EQ(client.status(), NATS_OK) << service << ": " << client.connect_error();
        auto subject = own_subject(service);
        client.publish(subject);
        EXPECT_TRUE(client.violated("Publish to \"" + subject + "\""))
            << service << ": " << ::testing::PrintToString(client.errors());
        // Nor may they change the stream or answer for the relay.
        client.publish(std::string{"$JS.API.STREAM.UPDATE."} + kStream);
        EXPECT_TRUE(client.violated("$JS.API.STREAM.UPDATE")) << service;
        client.publish("_INBOX.forged");
        EXPECT_TRUE(client.violated("_INBOX.forged")) << service;
    }
}

TEST(NatsSecurity, TheProjectorUserWritesTheBreakerBucketAndNoOther) {
    platform::KvBreakerStore store{nats_user("projector"), kBreakerBucket,
                                   platform::Logger::null_logger(), 5000ms};
    auto key = "nats-security-" + platform::new_uuid().substr(0, 8);
    platform::SharedBreakerState state;
    std::optional<std::uint64_t> revision;
    ASSERT_TRUE(eventually(
        [&] {
            try {
                revision = store.create(key, state);
                return true;
            } catch (const platform::Unavailable&) {
                return false;  // still connecting
            }
        },
        30s));
    ASSERT_TRUE(revision.has_value());
    auto entry = store.get(key);
    ASSERT_TRUE(entry.has_value());
    EXPECT_EQ(entry->revision, *revision);

    RawClient projector{nats_user("projector")};
    ASSERT_EQ(projector.status(), NATS_OK) << projector.connect_error();
    auto other = "$KV.other_" + platform::new_uuid().substr(0, 8) + ".key";
    projector.publish(other);
    EXPECT_TRUE(projector.violated("Publish to \"" + other + "\""))
        << ::testing::PrintToString(projector.errors());
    projector.publish("$JS.API.STREAM.CREATE.KV_other");
    EXPECT_TRUE(projector.violated("$JS.API.STREAM.CREATE.KV_other"));
}

TEST(NatsSecurity, TheSagasUserCannotWriteTheBreakerBucket) {
    RawClient sagas{nats_user("sagas")};
    ASSERT_EQ(sagas.status(), NATS_OK) << sagas.connect_error();
    auto subject = std::string{"$KV."} + kBreakerBucket + ".projection.orders";
    sagas.publish(subject);
    EXPECT_TRUE(sagas.violated("Publish to \"" + subject + "\""))
        << ::testing::PrintToString(sagas.errors());
}

TEST(NatsSecurity, TheCommandAndQueryUsersMayOnlyConnect) {
    for (const auto* service : {"command", "query"}) {
        RawClient client{nats_user(service)};
        ASSERT_EQ(client.status(), NATS_OK) << service << ": " << client.connect_error();
        auto subject = own_subject(service);
        client.publish(subject);
        EXPECT_TRUE(client.violated("Publish to \"" + subject + "\"")) << service;
        client.subscribe(std::string{kSubjects} + ".>");
        EXPECT_TRUE(client.violated("Subscription to \"" + std::string{kSubjects} + ".>\""))
            << service << ": " << ::testing::PrintToString(client.errors());
    }
}

}  // namespace
}  // namespace ordo::testing
