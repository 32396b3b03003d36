// A test client for server-sent events over plain sockets: reads the answer's head, then the
// stream message by message, and can be cut off abruptly (a reset, as a crashed client).
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ordo::testing {

struct SseMessage {
    std::string id;     // empty when the message has no id field
    std::string event;  // empty for the default type
    std::string data;   // data lines joined with '\n'
    bool has_data = false;
    bool comment = false;  // a comment line came (heartbeats)
};

class SseClient {
   public:
    // Connects to 127.0.0.1:`port` and sends GET `target` with `headers`. `receive_buffer`
    // (bytes, 0 for the default) sets SO_RCVBUF before connecting, for a client that reads
    // slowly. Throws std::runtime_error when it cannot connect.
    SseClient(std::uint16_t port, const std::string& target,
              const std::vector<std::pair<std::string, std::string>>& headers = {},
              int receive_buffer = 0);
    ~SseClient();
    SseClient(const SseClient&) = delete;
    SseClient& operator=(const SseClient&) = delete;

    // The status code of the answer (0 when none came within `timeout`), its head, and for a
    // non-stream answer the body read until the server closed.
    int status(std::chrono::milliseconds timeout = std::chrono::seconds(20));
    const std::string& head() const { return head_; }
    std::string body(std::chrono::milliseconds timeout = std::chrono::seconds(20));

    // `bytes` of the body, read as they come (fewer when the server closes first or
    // `timeout` passes).
    std::string read(std::size_t bytes,
                     std::chrono::milliseconds timeout = std::chrono::seconds(20));

    // The next message; nullopt when none came within `timeout` or the server closed.
    std::optional<SseMessage> next(std::chrono::milliseconds timeout = std::chrono::seconds(20));
    // Whether the server has closed the connection (after everything it sent was read).
    bool closed() const { return eof_; }

    // Closes with a reset (SO_LINGER 0), as a client that dies does.
    void abort();

   private:
    bool fill(std::chrono::steady_clock::time_point deadline);

    int fd_ = -1;
    std::string buffer_;
    std::string head_;
    bool eof_ = false;
};

}  // namespace ordo::testing
