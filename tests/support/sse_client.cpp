#include "tests/support/sse_client.hpp"

#include <stdexcept>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

namespace ordo::testing {

SseClient::SseClient(std::uint16_t port, const std::string& target,
                     const std::vector<std::pair<std::string, std::string>>& headers,
                     int receive_buffer) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd_ < 0) throw std::runtime_error("socket() failed");
    if (receive_buffer > 0) {
        ::setsockopt(fd_, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
    }
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(port);
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (::connect(fd_, reinterpret_cast<sockaddr*>(&address), sizeof address) != 0) {
        ::close(fd_);
        fd_ = -1;
        throw std::runtime_error("cannot connect to port " + std::to_string(port));
    }
    std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    for (const auto& [name, value] : headers) request += name + ": " + value + "\r\n";
    // A stream is the last answer on its connection anyway; a refusal then ends with it too.
    request += "Accept: text/event-stream\r\nConnection: close\r\n\r\n";
    std::size_t sent = 0;
    while (sent < request.size()) {
        auto n = ::send(fd_, request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
        if (n <= 0) throw std::runtime_error("sending the request failed");
        sent += static_cast<std::size_t>(n);
    }
}

SseClient::~SseClient() {
    if (fd_ >= 0) ::close(fd_);
}

void SseClient::abort() {
    if (fd_ < 0) return;
    linger option{1, 0};
    ::setsockopt(fd_, SOL_SOCKET, SO_LINGER, &option, sizeof option);
    ::close(fd_);
    fd_ = -1;
}

// Reads what is there (waiting until `deadline` for something); false on timeout or end.
bool SseClient::fill(std::chrono::steady_clock::time_point deadline) {
    if (eof_ || fd_ < 0) return false;
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - std::chrono::steady_clock::now());
    if (left.count() < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(left.count())) <= 0) return false;
    char chunk[16 * 1024];
    auto n = ::recv(fd_, chunk, sizeof chunk, 0);
    if (n <= 0) {
        eof_ = true;
        return false;
    }
    buffer_.append(chunk, static_cast<std::size_t>(n));
    return true;
}

int SseClient::status(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (head_.empty()) {
        auto end = buffer_.find("\r\n\r\n");
        if (end != std::string::npos) {
            head_ = buffer_.substr(0, end + 4);
            buffer_.erase(0, end + 4);
            break;
        }
        if (!fill(deadline)) return 0;
    }
    auto space = head_.find(' ');
    return space == std::string::npos ? 0 : std::stoi(head_.substr(space + 1, 3));
}

std::string SseClient::body(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (status(timeout) == 0) return {};
    while (fill(deadline)) {
    }
    return std::exchange(buffer_, {});
}

std::string SseClient::read(std::size_t bytes, std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (status(timeout) == 0) return {};
    while (buffer_.size() < bytes && fill(deadline)) {
    }
    std::string out = buffer_.substr(0, bytes);
    buffer_.erase(0, out.size());
    return out;
}

std::optional<SseMessage> SseClient::next(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    if (head_.empty() && status(timeout) == 0) return std::nullopt;
    while (true) {
        auto end = buffer_.find("\n\n");
        if (end != std::string::npos) {
            std::string block = buffer_.substr(0, end + 1);
            buffer_.erase(0, end + 2);
            SseMessage message;
            std::size_t start = 0;
            while (start < block.size()) {
                auto stop = block.find('\n', start);
                std::string line = block.substr(start, stop - start);
                start = stop + 1;
                if (!line.empty() && line[0] == ':') {
                    message.comment = true;
                    continue;
                }
                auto colon = line.find(':');
                std::string field = line.substr(0, colon);
                std::string value = colon == std::string::npos ? "" : line.substr(colon + 1);
                if (!value.empty() && value[0] == ' ') value.erase(0, 1);
                if (field == "id") message.id = value;
                if (field == "event") message.event = value;
                if (field == "data") {
                    message.data += (message.has_data ? "\n" : "") + value;
                    message.has_data = true;
                }
            }
            return message;
        }
        if (!fill(deadline)) return std::nullopt;
    }
}

}  // namespace ordo::testing
