// Child processes for fault tests (started, signalled, reaped), deploy/stack.sh actions, the
// ordo binary under test, and a free port.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace ordo::testing {

// A child process for fault tests: started with extra environment, signalled, reaped.
class Process {
   public:
    Process(std::vector<std::string> argv, const std::map<std::string, std::string>& env = {});
    ~Process();  // SIGKILLs a child still running
    Process(const Process&) = delete;
    Process& operator=(const Process&) = delete;

    pid_t pid() const { return pid_; }
    void signal(int sig);
    // The exit status (or 128 + signal), or nullopt if still running after `timeout`.
    std::optional<int> wait(std::chrono::milliseconds timeout);

   private:
    pid_t pid_ = -1;
    std::optional<int> status_;
};

// Runs a command to its end; its exit status.
int run(const std::vector<std::string>& argv);

// The test stack's script with its settings: deploy/stack.sh (pg-stop, pg-start, nats-kill,
// ...), or the script the stack's settings name (ORDO_STACK_SCRIPT: deploy/cluster.sh, with
// nats-node-kill <n>, pg-primary-kill, restore). Throws when it fails.
void stack(const std::string& action, const std::vector<std::string>& arguments = {});

// The ordo binary under test.
std::string ordo_binary();

// A loopback TCP port no other test process holds and the kernel will not hand to a
// connect (below the ephemeral range), reserved until this process ends.
std::uint16_t free_port();

}  // namespace ordo::testing
