// Children spawned with the test's environment (the stack's per-service credentials kept out)
// and waited for with a timeout, stack.sh runs, and ports reserved for services under test.
#include "tests/support/process.hpp"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <mutex>
#include <random>
#include <set>
#include <stdexcept>
#include <thread>
#include <utility>

#include "platform/core/config.hpp"
#include "tests/support/test_database.hpp"

extern char** environ;

namespace ordo::testing {

namespace {

// A per-service credential of the stack (ORDO_COMMAND_NATS_URL, ORDO_QUERY_DATABASE_URL...):
// a shell that loaded stack.env would otherwise hand the child a service's own user, which
// may touch only the default names, in place of what the test gave it.
bool is_stack_credential(const std::string& name) {
    auto ends_with = [&](const std::string& tail) {
        return name.size() > tail.size() &&
               name.compare(name.size() - tail.size(), tail.size(), tail) == 0;
    };
    return name.rfind("ORDO_", 0) == 0 && (ends_with("_NATS_URL") || ends_with("_DATABASE_URL"));
}

// Whether a loopback port can be bound now (SO_REUSEADDR, as the services bind).
bool bindable(std::uint16_t port) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return false;
    const int on = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    ::close(fd);
    return ok;
}

// Ports for services under test: [low, high) below the kernel's ephemeral range
// (net.ipv4.ip_local_port_range), at least 1024 wide; above it if it starts too low.
std::pair<std::uint32_t, std::uint32_t> test_port_range() {
    std::uint32_t first = 32768, last = 60999;
    if (std::ifstream range{"/proc/sys/net/ipv4/ip_local_port_range"}; range)
        range >> first >> last;
    if (first >= 10000 + 1024) return {10000, std::min<std::uint32_t>(first, 24000)};
    if (last + 1024 < 65535) return {last + 1, 65535};
    return {10000, 24000};  // the whole range is ephemeral: the flock and bind checks remain
}

}  // namespace

Process::Process(std::vector<std::string> argv, const std::map<std::string, std::string>& env) {
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
        std::string entry{*e};
        const auto name = entry.substr(0, entry.find('='));
        if (env.count(name) || is_stack_credential(name)) continue;  // the test's own win
        env_strings.push_back(entry);
    }
    for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
    std::vector<char*> args, envp;
    for (auto& a : argv) args.push_back(a.data());
    args.push_back(nullptr);
    for (auto& e : env_strings) envp.push_back(e.data());
    envp.push_back(nullptr);
    if (posix_spawn(&pid_, args[0], nullptr, nullptr, args.data(), envp.data()) != 0) {
        throw std::runtime_error("cannot start " + argv[0]);
    }
}

Process::~Process() {
    if (!status_) {
        ::kill(pid_, SIGKILL);
        int status = 0;
        ::waitpid(pid_, &status, 0);
    }
}

void Process::signal(int sig) {
    ::kill(pid_, sig);
}

std::optional<int> Process::wait(std::chrono::milliseconds timeout) {
    if (status_) return status_;
    auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
        int status = 0;
        if (::waitpid(pid_, &status, WNOHANG) == pid_) {
            status_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
            return status_;
        }
        if (std::chrono::steady_clock::now() > deadline) return std::nullopt;
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
}

int run(const std::vector<std::string>& argv) {
    Process p{argv};
    return p.wait(std::chrono::minutes(2)).value_or(-1);
}

void stack(const std::string& action, const std::vector<std::string>& arguments) {
    std::map<std::string, std::string> env;
    for (const char* name : {"ORDO_STACK_DIR", "ORDO_PG_PORT", "ORDO_NATS_PORT",
                             "ORDO_NATS_MONITOR_PORT", "ORDO_CLUSTER_BASE_PORT"}) {
        if (auto value = find_stack_setting(name)) env[name] = *value;
    }
    const auto script = find_stack_setting("ORDO_STACK_SCRIPT")
                            .value_or(std::string{ORDO_SOURCE_DIR} + "/deploy/stack.sh");
    std::vector<std::string> argv{"/bin/bash", script, action};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    Process process{argv, env};
    // A failover and the rejoin of the old primary take longer than a restart.
    if (int rc = process.wait(std::chrono::minutes(5)).value_or(-1); rc != 0) {
        throw std::runtime_error(script + " " + action + " failed with " + std::to_string(rc));
    }
}

std::string ordo_binary() {
    return platform::env("ORDO_BIN").value_or(std::string{ORDO_BUILD_DIR} + "/ordo");
}

std::uint16_t free_port() {
    // A port the kernel handed out and took back (bind to 0, close) is in the ephemeral range,
    // where any process's next outgoing connection may take it before the service under test
    // binds it: parallel tests lost that race. So ports come from below the ephemeral range,
    // where the kernel never picks one for a connect, and each is reserved across the test
    // processes by an flock held until this process ends (the kernel drops it even on a kill).
    static std::mutex mutex;
    static std::set<std::uint16_t> taken;  // this process's reservations, fds left open
    std::lock_guard lock{mutex};
    auto [low, high] = test_port_range();
    // Per user: another user's directory and lock files would not be ours to lock.
    const auto dir =
        std::filesystem::temp_directory_path() / ("ordo-test-ports-" + std::to_string(::getuid()));
    std::filesystem::create_directories(dir);
    std::mt19937 pick{std::random_device{}()};
    const auto span = static_cast<std::uint32_t>(high - low);
    for (int attempt = 0; attempt < 4096; ++attempt) {
        const auto port = static_cast<std::uint16_t>(low + pick() % span);
        if (taken.contains(port)) continue;
        const auto path = dir / std::to_string(port);
        const int fd = ::open(path.c_str(), O_RDONLY | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0) continue;
        if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
            ::close(fd);
            continue;
        }
        if (!bindable(port)) {  // something outside the tests listens there
            ::close(fd);
            continue;
        }
        taken.insert(port);  // fd stays open: the reservation lasts as long as the process
        return port;
    }
    throw std::runtime_error("free_port: no free loopback port in " + std::to_string(low) + "-" +
                             std::to_string(high));
}

}  // namespace ordo::testing
