// Connections over the caps: each is told so while few are, and a flood of them holds a
// bounded number of descriptors (the rest are closed unanswered and counted).

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstdint>
#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http.hpp"
#include "platform/http/http_server.hpp"
#include "tests/support/http_client.hpp"

namespace ordo::platform::http {
namespace {

using namespace std::chrono_literals;
using ordo::testing::HttpClient;
using ordo::testing::raw_exchange;

int connect_to(std::uint16_t port) {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || ::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        ADD_FAILURE() << "cannot connect";
    }
    return fd;
}

// Everything the server sends until it stops sending (or 10 s pass, which fails the test).
std::string read_to_end(int fd) {
    timeval timeout{10, 0};
    ::setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof timeout);
    std::string out;
    char buf[4096];
    for (;;) {
        auto n = ::recv(fd, buf, sizeof buf, 0);
        if (n == 0) return out;
        if (n < 0) {
            ADD_FAILURE() << "no end of the reply";
            return out;
        }
        out.append(buf, static_cast<std::size_t>(n));
    }
}

TEST(HttpRefusal, AFloodOfRefusedConnectionsIsAnsweredOnlyUpToABound) {
    metrics::Registry registry;
    Router router;
    router.add("GET", "/now", Access::open, [](Request&) { return Response::json(200, {}); });
    ServerOptions options;
    options.max_connections = 1;
    Server server{options, std::move(router), Logger::null_logger(), registry};
    server.start();
    // The one place is taken and kept.
    HttpClient holder{"127.0.0.1", server.port()};
    ASSERT_EQ(holder.get("/now").status, 200);

    // Many more at once. These clients never close their side, so every refusal that is
    // answered lingers (up to 2 s) while the rest arrive.
    constexpr int kFlood = 300;
    std::vector<int> sockets;
    for (int i = 0; i < kFlood; ++i) sockets.push_back(connect_to(server.port()));
    int answered = 0;
    int unanswered = 0;
    for (int fd : sockets) {
        auto reply = read_to_end(fd);
        if (reply.find("503") != std::string::npos) {
            ++answered;
        } else {
            EXPECT_TRUE(reply.empty()) << reply;
            ++unanswered;
        }
    }
    for (int fd : sockets) ::close(fd);
    const auto counted = [&](const char* reason) {
        return registry
            .counter("ordo_http_rejected_total", "", {{"component", "http"}, {"reason", reason}})
            .value();
    };
    EXPECT_GE(answered, 1);
    EXPECT_LE(answered, 64);  // kMaxRefusing
    EXPECT_EQ(answered + unanswered, kFlood);
    EXPECT_EQ(counted("connection_limit"), answered);
    EXPECT_EQ(counted("refused_unanswered"), unanswered);
    // The holder was never disturbed, and once the flood is gone a refusal is answered again.
    EXPECT_EQ(holder.get("/now").status, 200);
    auto later =
        raw_exchange("127.0.0.1", server.port(), "GET /now HTTP/1.1\r\nHost: x\r\n\r\n", 5s);
    EXPECT_NE(later.find("503"), std::string::npos);
    server.stop();
}

}  // namespace
}  // namespace ordo::platform::http
