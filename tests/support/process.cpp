// Children spawned with the test's environment (the stack's per-service credentials kept out)
// and waited for with a timeout, stack.sh runs, and the free-port lookup.
#include "tests/support/process.hpp"

#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stdexcept>
#include <thread>

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

void stack(const std::string& action) {
    std::map<std::string, std::string> env;
    for (const char* name :
         {"ORDO_STACK_DIR", "ORDO_PG_PORT", "ORDO_NATS_PORT", "ORDO_NATS_MONITOR_PORT"}) {
        env[name] = stack_setting(name);
    }
    Process script{{"/bin/bash", std::string{ORDO_SOURCE_DIR} + "/deploy/stack.sh", action}, env};
    if (int rc = script.wait(std::chrono::minutes(2)).value_or(-1); rc != 0) {
        throw std::runtime_error("stack.sh " + action + " failed with " + std::to_string(rc));
    }
}

std::string ordo_binary() {
    return platform::env("ORDO_BIN").value_or(std::string{ORDO_BUILD_DIR} + "/ordo");
}

std::uint16_t free_port() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
    socklen_t len = sizeof addr;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
    ::close(fd);
    return ntohs(addr.sin_port);
}

}  // namespace ordo::testing
