// Two of every service as processes, and the faults done to them (see soak_stack.hpp).
#include "tests/soak/soak_stack.hpp"

#include <csignal>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"

namespace ordo::soak {
namespace {

using namespace std::chrono_literals;

// libfaketime, from Debian's libfaketime package.
std::string faketime_library() {
    for (const char* path : {"/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1",
                             "/usr/lib/aarch64-linux-gnu/faketime/libfaketimeMT.so.1",
                             "/usr/lib/faketime/libfaketimeMT.so.1"}) {
        if (std::filesystem::exists(path)) return path;
    }
    throw std::runtime_error(
        "libfaketime is not installed (the clock faults need it; deploy/install.sh installs it)");
}

void write_file(const std::string& path, const std::string& text) {
    std::ofstream out{path, std::ios::trunc};
    out << text << "\n";
    if (!out) throw std::runtime_error("cannot write " + path);
}

}  // namespace

SoakStack::SoakStack(const std::string& mode) {
    clock_dir_ = (std::filesystem::temp_directory_path() / ("ordo-soak-" + db_.name())).string();
    std::filesystem::create_directories(clock_dir_);
    stream_ = "ORDO_SOAK_" + db_.name();
    prefix_ = "soak." + db_.name() + ".events";
    env_ = testing::spawned_service_env(db_);
    env_.merge(std::map<std::string, std::string>{
        {"ORDO_NATS_STREAM", stream_},
        {"ORDO_NATS_SUBJECT_PREFIX", prefix_},
        {"ORDO_BREAKER_BUCKET", "ORDO_SOAK_BREAKERS_" + db_.name()},
        {"ORDO_PARTITIONS", std::to_string(kPartitions)},
        {"ORDO_SAGA_MODE", mode},
        // A fault may hold a step up for seconds; deadlines are long enough that most orders
        // still confirm, short enough that some expire and compensate during a long soak.
        {"ORDO_SAGA_STEP_TIMEOUT_MS", "30000"},
        {"ORDO_SAGA_TIMEOUT_MS", "90000"},
        {"ORDO_LOG_LEVEL", "error"},
        // Every instance runs with libfaketime preloaded and its offset file at "+0": a
        // clock fault moves the wall clock only (the monotonic clock is left alone, as an
        // NTP step leaves it), re-read at most once a second.
        {"LD_PRELOAD", faketime_library()},
        {"FAKETIME_DONT_FAKE_MONOTONIC", "1"},
        {"FAKETIME_CACHE_DURATION", "1"}});
    for (auto service : kServices) {
        auto& instances = services_[std::string{service}];
        for (int i = 0; i < 2; ++i) instances.push_back({testing::free_port(), nullptr});
    }
    for (auto service : kServices) {
        for (int i = 0; i < 2; ++i) start(std::string{service}, i);
    }
    ensure_all_up();
}

std::string SoakStack::clock_file(const std::string& service, int index) const {
    return clock_dir_ + "/" + service + "-" + std::to_string(index);
}

SoakStack::~SoakStack() {
    for (auto& [service, instances] : services_) {
        for (auto& instance : instances) {
            if (instance.process) instance.process->signal(SIGCONT);  // a paused one can die
        }
    }
    std::error_code ignored;
    std::filesystem::remove_all(clock_dir_, ignored);
}

std::vector<std::uint16_t> SoakStack::ports(const std::string& service) const {
    std::vector<std::uint16_t> out;
    for (const auto& instance : services_.at(service)) out.push_back(instance.port);
    return out;
}

void SoakStack::start(const std::string& service, int index) {
    auto& instance = services_.at(service).at(static_cast<std::size_t>(index));
    std::vector<std::string> argv{testing::ordo_binary(), "serve", service, "--address",
                                  "127.0.0.1:" + std::to_string(instance.port)};
    if (service == "command" || service == "query") argv.push_back("--insecure-no-auth");
    auto env = env_;
    env["FAKETIME_TIMESTAMP_FILE"] = clock_file(service, index);
    if (!std::filesystem::exists(env["FAKETIME_TIMESTAMP_FILE"]))
        write_file(env["FAKETIME_TIMESTAMP_FILE"], "+0");
    instance.process = std::make_unique<testing::Process>(argv, env);
}

void SoakStack::ensure_all_up() {
    std::lock_guard lock{mutex_};
    for (auto& [service, instances] : services_) {
        for (std::size_t i = 0; i < instances.size(); ++i) {
            auto& instance = instances[i];
            if (!instance.process || instance.process->wait(0ms)) {
                start(service, static_cast<int>(i));
            }
            if (!testing::wait_healthy(instance.port, 60s)) {
                throw std::runtime_error(service + " instance " + std::to_string(i) +
                                         " is not healthy on port " +
                                         std::to_string(instance.port));
            }
        }
    }
}

void SoakStack::stop(const std::string& service) {
    std::lock_guard lock{mutex_};
    for (auto& instance : services_.at(service)) {
        if (!instance.process) continue;
        instance.process->signal(SIGCONT);
        instance.process->signal(SIGTERM);
        if (!instance.process->wait(30s)) {
            throw std::runtime_error(service + " did not stop within 30 s of SIGTERM");
        }
        instance.process.reset();
    }
}

void SoakStack::terminate_service_connections() {
    pqxx::connection admin{db_.admin_url()};
    pqxx::nontransaction tx{admin};
    tx.exec_params(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid <> "
        "pg_backend_pid()",
        db_.name());
}

void SoakStack::begin(const PlannedFault& fault) {
    std::lock_guard lock{mutex_};
    switch (fault.spec.kind) {
        case FaultKind::kClock:
            write_file(clock_file(fault.spec.service, fault.instance), "+300");
            return;
        case FaultKind::kKill:
        case FaultKind::kPause: {
            auto& instance =
                services_.at(fault.spec.service).at(static_cast<std::size_t>(fault.instance));
            if (!instance.process) return;
            if (fault.spec.kind == FaultKind::kKill) {
                instance.process->signal(SIGKILL);
                instance.process->wait(10s);
            } else {
                instance.process->signal(SIGSTOP);
            }
            return;
        }
        case FaultKind::kNatsRestart:
            testing::stack("nats-stop");
            return;
        case FaultKind::kNatsKill:
            testing::stack("nats-kill");
            return;
        case FaultKind::kPgFast:
            testing::stack("pg-stop");
            return;
        case FaultKind::kPgImmediate:
            testing::stack("pg-kill");
            return;
        case FaultKind::kPgTerminate:
            terminate_service_connections();
            return;
    }
}

void SoakStack::end(const PlannedFault& fault) {
    {
        std::lock_guard lock{mutex_};
        switch (fault.spec.kind) {
            case FaultKind::kKill:
                start(fault.spec.service, fault.instance);
                break;
            case FaultKind::kPause: {
                auto& instance =
                    services_.at(fault.spec.service).at(static_cast<std::size_t>(fault.instance));
                if (instance.process) instance.process->signal(SIGCONT);
                break;
            }
            case FaultKind::kNatsRestart:
            case FaultKind::kNatsKill:
                testing::stack("nats-start");
                break;
            case FaultKind::kPgFast:
            case FaultKind::kPgImmediate:
                testing::stack("pg-start");
                break;
            case FaultKind::kClock:
                write_file(clock_file(fault.spec.service, fault.instance), "+0");
                break;
            case FaultKind::kPgTerminate:
                break;
        }
    }
    ensure_all_up();
}

}  // namespace ordo::soak
