// Two of every service as processes, and the faults done to them (see soak_stack.hpp).
#include "tests/soak/soak_stack.hpp"

#include <csignal>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"

namespace ordo::soak {
namespace {

using namespace std::chrono_literals;

}  // namespace

SoakStack::SoakStack(const std::string& mode) {
    stream_ = "ORDO_SOAK_" + db_.name();
    prefix_ = "soak." + db_.name() + ".events";
    env_ = testing::spawned_service_env(db_);
    env_.merge(std::map<std::string, std::string>{
        {"ORDO_NATS_STREAM", stream_},
        {"ORDO_NATS_SUBJECT_PREFIX", prefix_},
        {"ORDO_BREAKER_BUCKET", "ORDO_SOAK_BREAKERS_" + db_.name()},
        {"ORDO_PARTITIONS", "4"},
        {"ORDO_SAGA_MODE", mode},
        // A fault may hold a step up for seconds; deadlines are long enough that most orders
        // still confirm, short enough that some expire and compensate during a long soak.
        {"ORDO_SAGA_STEP_TIMEOUT_MS", "30000"},
        {"ORDO_SAGA_TIMEOUT_MS", "90000"},
        {"ORDO_LOG_LEVEL", "error"}});
    for (auto service : kServices) {
        auto& instances = services_[std::string{service}];
        for (int i = 0; i < 2; ++i) instances.push_back({testing::free_port(), nullptr});
    }
    for (auto service : kServices) {
        for (int i = 0; i < 2; ++i) start(std::string{service}, i);
    }
    ensure_all_up();
}

SoakStack::~SoakStack() {
    for (auto& [service, instances] : services_) {
        for (auto& instance : instances) {
            if (instance.process) instance.process->signal(SIGCONT);  // a paused one can die
        }
    }
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
    instance.process = std::make_unique<testing::Process>(argv, env_);
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
            case FaultKind::kPgTerminate:
                break;
        }
    }
    ensure_all_up();
}

}  // namespace ordo::soak
