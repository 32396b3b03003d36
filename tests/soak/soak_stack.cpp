// Two of every service as processes, and the faults done to them (see soak_stack.hpp).
#include "tests/soak/soak_stack.hpp"

#include <fcntl.h>
#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <cctype>
#include <cerrno>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <stdexcept>
#include <thread>

#include <pqxx/pqxx>

#include "platform/core/comma_list.hpp"
#include "platform/nats/jetstream.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/nats.hpp"
#include "tests/support/shard_map.hpp"

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

// The receiver's binary, beside ordo-soak.
std::string receiver_binary() {
    return (std::filesystem::read_symlink("/proc/self/exe").parent_path() / "ordo-soak-receiver")
        .string();
}

// The port of a "host:port" or "http://host:port" address.
std::uint16_t port_of(const std::string& address) {
    return static_cast<std::uint16_t>(std::stoi(address.substr(address.rfind(':') + 1)));
}

// The cluster's two addresses of a service that HAProxy forwards to (ORDO_HA_<SERVICE>_ADDRS).
std::vector<std::uint16_t> cluster_ports(const std::string& service) {
    std::string variable = "ORDO_HA_";
    for (char c : service) variable.push_back(static_cast<char>(std::toupper(c)));
    variable += "_ADDRS";
    const auto addresses = platform::comma_list(testing::stack_setting(variable.c_str()));
    if (addresses.size() != 2)
        throw std::runtime_error(variable + " names " + std::to_string(addresses.size()) +
                                 " addresses, not two");
    return {port_of(addresses[0]), port_of(addresses[1])};
}

// The NATS store's filesystem: big enough for hours of soak, small enough to fill in a moment.
constexpr const char* kNatsStoreSize = "size=1g,mode=0700";
constexpr const char* kNatsStoreSource = "ordo-soak-nats";

}  // namespace

Topology stack_topology() {
    return testing::find_stack_setting("ORDO_STACK_TOPOLOGY").value_or("") == "ha"
               ? Topology::kCluster
               : Topology::kSingle;
}

SoakStack::SoakStack(const std::string& mode, bool nats_disk, int shards)
    : topology_{stack_topology()} {
    if (shards != 1 && shards != 2)
        throw std::invalid_argument("the soak runs on 1 or 2 shards, not " +
                                    std::to_string(shards));
    if (shards == 2 && topology_ == Topology::kCluster)
        throw std::invalid_argument("the highly available cluster runs one store, not two shards");
    work_dir_ = (std::filesystem::temp_directory_path() / ("ordo-soak-" + db_.name())).string();
    std::filesystem::create_directories(work_dir_);
    webhook_log_ = work_dir_ + "/webhook.log";
    try {
        if (shards == 2) {
            second_ = std::make_unique<testing::TestDatabase>(true, 1);
            if (auto [rc, out] = testing::write_two_shard_map(db_, *second_, kPartitions); rc != 0)
                throw std::runtime_error("ordo shards init failed: " + out);
        }
        mount_nats_store(nats_disk);
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
            // ORDO_SOAK_LOG_LEVEL (error): the services' log level, for a look at a failure.
            {"ORDO_LOG_LEVEL",
             std::getenv("ORDO_SOAK_LOG_LEVEL") ? std::getenv("ORDO_SOAK_LOG_LEVEL") : "error"},
            // The projectors deliver the order events to the receiver; its timeout is short so
            // that a slow receiver makes some deliveries time out and go again.
            {"ORDO_WEBHOOK_EVENT_TYPES", kWebhookEventTypes},
            {"ORDO_WEBHOOK_TIMEOUT_MS", "1000"},
            // Every instance runs with libfaketime preloaded and its offset file at "+0": a
            // clock fault moves the wall clock only (the monotonic clock is left alone, as an
            // NTP step leaves it), re-read at most once a second.
            {"LD_PRELOAD", faketime_library()},
            {"FAKETIME_DONT_FAKE_MONOTONIC", "1"},
            {"FAKETIME_CACHE_DURATION", "1"}});
        if (auto replicas = testing::find_stack_setting("ORDO_NATS_REPLICAS"))
            env_["ORDO_NATS_REPLICAS"] = *replicas;
        receiver_.port = testing::free_port();
        env_["ORDO_WEBHOOK_URL"] = "http://127.0.0.1:" + std::to_string(receiver_.port) + "/hook";
        start_receiver();
        for (auto service : kServices) {
            auto& instances = services_[std::string{service}];
            const bool behind_proxy = service == "command" || service == "query";
            if (topology_ == Topology::kCluster && behind_proxy) {
                for (auto port : cluster_ports(std::string{service}))
                    instances.push_back({port, nullptr});
            } else {
                // Two relays per shard, instance i leading (or standing by for) shard i mod
                // the shards: a fault's instance 0 or 1 hits a relay of each shard.
                const int count = service == "relay" ? 2 * shards : 2;
                for (int i = 0; i < count; ++i)
                    instances.push_back({testing::free_port(), nullptr});
            }
        }
        for (auto service : kServices) {
            for (std::size_t i = 0; i < services_[std::string{service}].size(); ++i)
                start(std::string{service}, static_cast<int>(i));
        }
        ensure_all_up();
    } catch (...) {
        release();  // no destructor runs for a constructor that throws
        throw;
    }
}

std::string SoakStack::clock_file(const std::string& service, int index) const {
    return work_dir_ + "/" + service + "-" + std::to_string(index);
}

SoakStack::~SoakStack() {
    release();
}

void SoakStack::release() noexcept {
    for (auto& [service, instances] : services_) {
        for (auto& instance : instances) {
            if (!instance.process) continue;
            instance.process->signal(SIGCONT);  // a paused one can die
            instance.process.reset();           // SIGKILLed and reaped
        }
    }
    receiver_.process.reset();
    // The run's stream and breaker bucket go with its database: runs must not pile up in a
    // stack's JetStream.
    if (!stream_.empty()) {
        try {
            platform::jetstream::Client nats{testing::nats_admin(),
                                             platform::Logger::null_logger()};
            nats.delete_stream(stream_);
            nats.delete_stream("KV_" + env_["ORDO_BREAKER_BUCKET"]);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "soak: could not delete the run's stream %s: %s\n",
                         stream_.c_str(), e.what());
        }
    }
    unmount_nats_store();
    std::error_code ignored;
    std::filesystem::remove_all(work_dir_, ignored);
}

std::vector<std::uint16_t> SoakStack::ports(const std::string& service) const {
    std::vector<std::uint16_t> out;
    for (const auto& instance : services_.at(service)) out.push_back(instance.port);
    return out;
}

std::vector<std::uint16_t> SoakStack::client_ports(const std::string& service) const {
    if (topology_ == Topology::kSingle) return ports(service);
    return {port_of(testing::stack_setting(service == "command" ? "ORDO_HA_COMMAND_URL"
                                                                : "ORDO_HA_QUERY_URL"))};
}

void SoakStack::start(const std::string& service, int index) {
    auto& instance = services_.at(service).at(static_cast<std::size_t>(index));
    std::vector<std::string> argv{testing::ordo_binary(), "serve", service, "--address",
                                  "127.0.0.1:" + std::to_string(instance.port)};
    if (service == "command" || service == "query") argv.push_back("--insecure-no-auth");
    if (service == "relay" && second_)
        argv.insert(argv.end(), {"--shard", std::to_string(index % 2)});
    auto env = env_;
    env["FAKETIME_TIMESTAMP_FILE"] = clock_file(service, index);
    if (!std::filesystem::exists(env["FAKETIME_TIMESTAMP_FILE"]))
        write_file(env["FAKETIME_TIMESTAMP_FILE"], "+0");
    instance.process = std::make_unique<testing::Process>(argv, env);
}

void SoakStack::start_receiver() {
    receiver_.process = std::make_unique<testing::Process>(std::vector<std::string>{
        receiver_binary(), "--port", std::to_string(receiver_.port), "--log", webhook_log_,
        "--slow-min-ms", "200", "--slow-max-ms", "2000"});
    if (!testing::wait_healthy(receiver_.port, 30s)) {
        throw std::runtime_error("the webhook receiver is not healthy on port " +
                                 std::to_string(receiver_.port));
    }
}

namespace {
// Whether `dir` is a mount point of the soak's NATS store filesystem (one a killed soak left).
bool soak_store_mounted(const std::string& dir) {
    std::ifstream mounts{"/proc/self/mounts"};
    for (std::string source, target, rest;
         mounts >> source >> target && std::getline(mounts, rest);) {
        if (source == kNatsStoreSource && target == dir) return true;
    }
    return false;
}
// Whether nats-server's JetStream answers its monitoring endpoint within a few seconds, and
// is enabled.
bool jetstream_answers() {
    const auto port =
        static_cast<std::uint16_t>(std::stoi(testing::stack_setting("ORDO_NATS_MONITOR_PORT")));
    try {
        // A JetStream that switched itself off still answers, saying so.
        testing::HttpClient monitor{"127.0.0.1", port, 5s};
        const auto answer = monitor.get("/jsz");
        return answer.status == 200 && !answer.json().value("disabled", false);
    } catch (const std::exception&) {
        return false;
    }
}
}  // namespace

void SoakStack::mount_nats_store(bool mount) {
    const auto store =
        std::filesystem::weakly_canonical(testing::stack_setting("ORDO_STACK_DIR") + "/nats")
            .string();
    // A soak that was killed left its filesystem over the store: take it away first, so that
    // the tests after this one never run on a ballast-filled tmpfs.
    const bool stale = soak_store_mounted(store);
    if (!stale && !mount) return;
    testing::stack("nats-stop");
    while (soak_store_mounted(store) && ::umount2(store.c_str(), MNT_DETACH) == 0) {
    }
    if (mount) {
        std::filesystem::create_directories(store);
        if (::mount(kNatsStoreSource, store.c_str(), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC,
                    kNatsStoreSize) != 0) {
            const int error = errno;
            testing::stack("nats-start");
            throw std::runtime_error("cannot mount a filesystem for the NATS store on " + store +
                                     ": " + std::strerror(error) +
                                     " (the nats-disk-full fault needs root; leave it out with "
                                     "--faults all,-nats-disk-full)");
        }
        nats_store_ = store;  // from here on release() takes it away, whatever throws next
    }
    testing::stack("nats-start");
}

void SoakStack::unmount_nats_store() noexcept {
    if (nats_store_.empty()) return;
    try {
        testing::stack("nats-stop");
    } catch (const std::exception&) {
        try {
            testing::stack("nats-kill");  // a hung one ignores SIGTERM
        } catch (const std::exception&) {
        }
    }
    ::umount2(nats_store_.c_str(), MNT_DETACH);
    nats_store_.clear();
    try {
        testing::stack("nats-start");
    } catch (const std::exception&) {
    }
}

void SoakStack::fill_disk() {
    const auto ballast = nats_store_ + "/ballast";
    const int fd = ::open(ballast.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0) throw std::runtime_error("cannot create " + ballast + ": " + std::strerror(errno));
    struct statvfs fs {};
    if (::fstatvfs(fd, &fs) == 0 && fs.f_bavail > 0) {
        ::posix_fallocate(fd, 0, static_cast<off_t>(fs.f_bavail * fs.f_frsize));
    }
    // Whatever fallocate left, after what it reserved: page by page until the filesystem
    // says it is full.
    ::lseek(fd, 0, SEEK_END);
    static const char page[4096] = {};
    for (;;) {
        const auto n = ::write(fd, page, sizeof page);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) break;
    }
    ::close(fd);
}

void SoakStack::empty_disk() {
    std::error_code ignored;
    std::filesystem::remove(nats_store_ + "/ballast", ignored);
}

void SoakStack::ensure_all_up() {
    std::lock_guard lock{mutex_};
    if (!receiver_.process || receiver_.process->wait(0ms)) start_receiver();
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
    for (const auto* db : {&db_, second_.get()}) {
        if (!db) continue;
        pqxx::connection admin{db->admin_url()};
        pqxx::nontransaction tx{admin};
        tx.exec_params(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1 AND pid "
            "<> pg_backend_pid()",
            db->name());
    }
}

void SoakStack::pg(const std::string& action, int instance) {
    if (second_)
        testing::stack(action, {std::to_string(instance % 2)});
    else
        testing::stack(action);
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
            pg("pg-stop", fault.instance);
            return;
        case FaultKind::kPgImmediate:
            pg("pg-kill", fault.instance);
            return;
        case FaultKind::kPgTerminate:
            terminate_service_connections();
            return;
        case FaultKind::kWebhookDown:
            receiver_.process->signal(SIGKILL);
            receiver_.process->wait(10s);
            return;
        case FaultKind::kSlowSink:
            receiver_.process->signal(SIGUSR1);
            return;
        case FaultKind::kNatsDiskFull:
            if (nats_store_.empty())
                throw std::logic_error("the NATS store has no disk of its own");
            fill_disk();
            return;
        case FaultKind::kNatsNode:
            testing::stack("nats-node-kill", {std::to_string(fault.instance)});
            return;
        case FaultKind::kPgFailover:
            testing::stack("pg-primary-kill");
            return;
    }
}

std::string SoakStack::end(const PlannedFault& fault) {
    std::string remedy;
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
                pg("pg-start", fault.instance);
                break;
            case FaultKind::kClock:
                write_file(clock_file(fault.spec.service, fault.instance), "+0");
                break;
            case FaultKind::kPgTerminate:
                break;
            case FaultKind::kWebhookDown:
                start_receiver();
                break;
            case FaultKind::kSlowSink:
                receiver_.process->signal(SIGUSR2);
                break;
            case FaultKind::kNatsDiskFull:
                empty_disk();
                // nats-server 2.9 may leave JetStream hung after a write failed for want of
                // space (its API unanswered, SIGTERM ignored): then the operator's remedy,
                // a kill and a start.
                if (!jetstream_answers()) {
                    testing::stack("nats-kill");
                    testing::stack("nats-start");
                    remedy =
                        "JetStream hung after the space was freed: nats-server killed and started";
                }
                break;
            case FaultKind::kNatsNode:
            case FaultKind::kPgFailover:
                // Whatever was killed started again, and the cluster whole: the old primary
                // a synchronous standby, every NATS node current.
                testing::stack("restore");
                break;
        }
    }
    ensure_all_up();
    return remedy;
}

}  // namespace ordo::soak
