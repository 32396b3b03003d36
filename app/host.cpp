// What every `ordo serve` process does the same way (see host.hpp): stop signals, token and secret
// files, the HTTP server, span export, and the partition count agreed with the database.

#include "app/host.hpp"

#include <thread>

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>

#include <nlohmann/json.hpp>

#include <pqxx/pqxx>

#include "eventstore/shard_catalog.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/config.hpp"
#include "platform/core/errors.hpp"
#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"

namespace ordo::app {

StopSignals::StopSignals() {
    sigemptyset(&set_);
    sigaddset(&set_, SIGINT);
    sigaddset(&set_, SIGTERM);
    sigaddset(&set_, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &set_, nullptr);
}

bool StopSignals::wait_for(std::chrono::seconds tick) {
    timespec timeout{static_cast<time_t>(tick.count()), 0};
    int sig = sigtimedwait(&set_, nullptr, &timeout);
    if (sig == SIGHUP) {
        for (const auto& handler : on_hangup_) handler();
    }
    return sig == SIGINT || sig == SIGTERM;
}

void StopSignals::wait() {
    while (!wait_for(std::chrono::seconds(60))) {
    }
}

std::optional<std::pair<std::string, std::uint16_t>> parse_address(const std::string& address) {
    auto colon = address.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    std::uint16_t port = 0;
    const char* first = address.data() + colon + 1;
    const char* last = address.data() + address.size();
    auto [end, ec] = std::from_chars(first, last, port);
    if (ec != std::errc{} || end != last || first == last) return std::nullopt;
    return std::pair{address.substr(0, colon), port};
}

bool is_safe_redirect_base(const std::string& url) {
    if (url.rfind("https://", 0) == 0) {
        const auto slash = url.find('/', 8);
        const auto authority =
            url.substr(8, slash == std::string::npos ? std::string::npos : slash - 8);
        return !authority.empty() && authority.find('@') == std::string::npos;
    }
    if (url.rfind("http://", 0) != 0) return false;
    const auto slash = url.find('/', 7);
    const auto authority =
        url.substr(7, slash == std::string::npos ? std::string::npos : slash - 7);
    if (authority.find('@') != std::string::npos) return false;  // no userinfo tricks
    // The host must be a loopback address literal, not a name that merely starts like one.
    std::string host;
    if (!authority.empty() && authority.front() == '[') {
        auto close = authority.find(']');
        if (close == std::string::npos) return false;
        host = authority.substr(1, close - 1);
    } else {
        host = authority.substr(0, authority.find(':'));
    }
    in6_addr v6{};
    in_addr v4{};
    if (::inet_pton(AF_INET6, host.c_str(), &v6) == 1) return IN6_IS_ADDR_LOOPBACK(&v6);
    if (::inet_pton(AF_INET, host.c_str(), &v4) == 1) return (ntohl(v4.s_addr) >> 24) == 127;
    return false;
}

bool is_loopback(const std::string& host) {
    return host == "::1" || host.rfind("127.", 0) == 0;
}

namespace {

// Reads a file of security settings (`what`: "the token file"), refusing one owned by
// another user than root or this service's, or one whose mode has any of `refused` bits
// (`advice` says what to do about it). The checks are made on the open file (fstat), not on
// its name, so the file read is the file checked. Replace such a file by rename for a reload
// to see either the old or the new one whole.
std::string read_protected_file(const std::string& file, const std::string& what, mode_t refused,
                                const std::string& advice) {
    // O_NONBLOCK: a FIFO put in the file's place must not hang the thread that reloads.
    const int fd = ::open(file.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) {
        throw std::runtime_error("cannot read " + what + " " + file + ": " + std::strerror(errno));
    }
    struct Closer {
        int fd;
        ~Closer() { ::close(fd); }
    } closer{fd};
    std::string text;
    try {
        struct stat st {};
        if (::fstat(fd, &st) != 0) throw std::runtime_error(std::strerror(errno));
        if (!S_ISREG(st.st_mode)) throw std::runtime_error("it is not a regular file");
        if (st.st_uid != 0 && st.st_uid != ::geteuid()) {
            throw std::runtime_error(
                "it belongs to another user; it must be root's or this "
                "service's");
        }
        if ((st.st_mode & refused) != 0) throw std::runtime_error(advice);
        char buf[4096];
        for (;;) {
            auto n = ::read(fd, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) throw std::runtime_error(std::strerror(errno));
            if (n == 0) break;
            text.append(buf, static_cast<std::size_t>(n));
            if (text.size() > (1U << 20)) throw std::runtime_error("it is larger than 1 MiB");
        }
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(what + " " + file + " is refused: " + e.what());
    }
    return text;
}

// Loads the token file, refusing one that others could write: whoever can add a line can
// let themselves in.
platform::http::TokenSet load_token_file(const std::string& file) {
    const std::string text =
        read_protected_file(file, "the token file", S_IWGRP | S_IWOTH,
                            "it is writable by others; chmod go-w it (0600 or 0644)");
    platform::http::TokenSet set;
    try {
        set = platform::http::TokenSet::parse(text);
    } catch (const platform::http::TokenFileError& e) {
        throw std::runtime_error(file + ": " + e.what());
    }
    if (set.empty()) throw std::runtime_error("the token file " + file + " has no tokens");
    return set;
}

}  // namespace

std::optional<std::shared_ptr<const platform::http::TokenSet>> api_tokens(
    const std::string& file, bool insecure_no_auth, const std::string& address,
    const platform::Logger& log) {
    if (platform::env("ORDO_API_TOKENS")) {
        log.error(
            "ORDO_API_TOKENS (raw tokens) is no longer read: issue named, scoped tokens with "
            "`ordo token new NAME --scopes ...` and list their lines in ORDO_API_TOKENS_FILE");
        return std::nullopt;
    }
    if (!file.empty()) {
        try {
            auto set = std::make_shared<const platform::http::TokenSet>(load_token_file(file));
            log.info("API tokens loaded", {{"file", file}, {"tokens", set->entries().size()}});
            if (insecure_no_auth) log.warn("--insecure-no-auth is ignored: a token file is given");
            return set;
        } catch (const std::exception& e) {
            log.error("refusing to start: the API tokens did not load", {{"error", e.what()}});
            return std::nullopt;
        }
    }
    if (!insecure_no_auth) {
        log.error(
            "refusing to start without API tokens: set ORDO_API_TOKENS_FILE (see `ordo token "
            "new`), or pass --insecure-no-auth to serve /v1 routes to anyone on loopback");
        return std::nullopt;
    }
    auto parsed = parse_address(address);
    if (!parsed || !is_loopback(parsed->first)) {
        log.error("refusing to serve /v1 routes without tokens beyond loopback",
                  {{"address", address}});
        return std::nullopt;
    }
    log.warn("serving /v1 routes without authentication, on loopback only (--insecure-no-auth)",
             {{"address", address}});
    return std::shared_ptr<const platform::http::TokenSet>{};
}

void reload_tokens_on_hangup(StopSignals& signals, platform::http::Server& server,
                             const std::string& file, const platform::Logger& log,
                             platform::metrics::Registry& registry) {
    if (file.empty()) return;
    const char* help = "Reloads of the API token file on SIGHUP, by outcome";
    auto& loaded = registry.counter("ordo_api_token_reloads_total", help, {{"outcome", "loaded"}});
    auto& failed = registry.counter("ordo_api_token_reloads_total", help, {{"outcome", "failed"}});
    signals.on_hangup([&server, &loaded, &failed, file, log] {
        try {
            auto set = std::make_shared<const platform::http::TokenSet>(load_token_file(file));
            server.set_tokens(set);
            loaded.inc();
            log.info("API tokens reloaded", {{"file", file}, {"tokens", set->entries().size()}});
        } catch (const std::exception& e) {
            failed.inc();
            log.error("API tokens not reloaded; the previous ones stay in force",
                      {{"error", e.what()}});
        }
    });
}

std::string read_secret_file(const std::string& file) {
    return read_protected_file(file, "the secret file", S_IRWXG | S_IRWXO,
                               "others may read or write it; chmod 0600 it");
}

void raise_file_limit(std::size_t needed, const platform::Logger& log) {
    rlimit limit{};
    if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur >= needed) return;
    if (limit.rlim_cur == RLIM_INFINITY) return;
    const rlim_t wanted =
        limit.rlim_max == RLIM_INFINITY ? needed : std::min<rlim_t>(needed, limit.rlim_max);
    if (wanted > limit.rlim_cur) {
        limit.rlim_cur = wanted;
        if (::setrlimit(RLIMIT_NOFILE, &limit) != 0) {
            log.warn("could not raise the open-file limit",
                     {{"needed", needed}, {"error", std::strerror(errno)}});
            return;
        }
    }
    if (wanted < needed) {
        log.warn(
            "the open-file limit is below what the connection caps need; raise the hard "
            "limit (LimitNOFILE=, ulimit -Hn)",
            {{"needed", needed}, {"limit", static_cast<std::uint64_t>(wanted)}});
    }
}

std::unique_ptr<platform::http::Server> start_server(
    StopSignals& signals, const std::string& address, const ListenerTls& tls,
    platform::http::ServerOptions options, platform::http::Router router,
    const platform::Logger& log, platform::metrics::Registry& registry) {
    auto parsed = parse_address(address);
    if (!parsed) {
        log.error("the address must be host:port", {{"address", address}});
        return nullptr;
    }
    options.address = parsed->first;
    options.port = parsed->second;
    if (tls.cert_file.empty() != tls.key_file.empty()) {
        log.error(
            "refusing to start: give both --tls-cert-file and --tls-key-file "
            "(ORDO_TLS_CERT_FILE, ORDO_TLS_KEY_FILE), or neither");
        return nullptr;
    }
    options.tls = {.certificate_chain_file = tls.cert_file, .private_key_file = tls.key_file};
    const bool takes_tokens = options.tokens && !options.tokens->empty();
    if (!options.tls.enabled() && takes_tokens && !is_loopback(options.address)) {
        if (!tls.insecure_no_tls) {
            log.error(
                "refusing to take bearer tokens over plain HTTP beyond loopback: give "
                "--tls-cert-file and --tls-key-file, or --insecure-no-tls when a proxy in front "
                "terminates TLS",
                {{"address", address}});
            return nullptr;
        }
        log.warn("serving plain HTTP beyond loopback (--insecure-no-tls): TLS must end in front",
                 {{"address", address}});
    }
    raise_file_limit(options.max_connections + kFilesBesideConnections, log);
    auto server =
        std::make_unique<platform::http::Server>(options, std::move(router), log, registry);
    try {
        server->start();
    } catch (const std::exception& e) {
        log.error("refusing to start: cannot serve", {{"address", address}, {"error", e.what()}});
        return nullptr;
    }
    if (server->tls()) {
        const char* help = "Reloads of the TLS certificate and key on SIGHUP, by outcome";
        auto& loaded = registry.counter("ordo_tls_reloads_total", help, {{"outcome", "loaded"}});
        auto& failed = registry.counter("ordo_tls_reloads_total", help, {{"outcome", "failed"}});
        signals.on_hangup([server = server.get(), &loaded, &failed, log] {
            try {
                server->reload_tls();
                loaded.inc();
            } catch (const std::exception& e) {
                failed.inc();
                log.error("TLS certificate not reloaded; the previous one stays in use",
                          {{"error", e.what()}});
            }
        });
    }
    return server;
}

std::unique_ptr<platform::otlp::Exporter> span_exporter(const std::string& service,
                                                        const platform::Logger& log,
                                                        platform::metrics::Registry& registry) {
    static const platform::SystemClock clock;
    auto env = [](const char* name) {
        const char* value = std::getenv(name);
        return std::string{value ? value : ""};
    };
    std::string url = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
    if (url.empty()) {
        auto endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        if (endpoint.empty()) return nullptr;
        url = platform::otlp::traces_url(endpoint);
    }
    std::string name = env("OTEL_SERVICE_NAME");
    if (name.empty()) name = service;
    // The OpenTelemetry variables first, then the one CA setting of every outgoing client.
    std::string ca_file = env("OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE");
    if (ca_file.empty()) ca_file = env("OTEL_EXPORTER_OTLP_CERTIFICATE");
    if (ca_file.empty()) ca_file = env("ORDO_TLS_CA_FILE");
    std::string header_list = env("OTEL_EXPORTER_OTLP_TRACES_HEADERS");
    if (header_list.empty()) header_list = env("OTEL_EXPORTER_OTLP_HEADERS");
    auto headers = platform::otlp::parse_headers(header_list);
    if (!headers) {
        log.error(
            "spans are not exported: OTEL_EXPORTER_OTLP_HEADERS is not a list of key=value "
            "pairs, separated by commas, values percent-encoded",
            {});
        return nullptr;
    }
    // A token on plain HTTP beyond this machine is as good as public.
    if (!headers->empty() && url.rfind("http://", 0) == 0 && url.rfind("http://127.", 0) != 0 &&
        url.rfind("http://localhost", 0) != 0 && url.rfind("http://[::1]", 0) != 0) {
        log.warn("spans and their headers go to the collector over plain HTTP; use https://",
                 {{"url", url}});
    }
    // Header names only: their values are credentials.
    auto header_names = nlohmann::json::array();
    for (const auto& [key, value] : *headers) header_names.push_back(key);
    log.info(
        "exporting spans",
        {{"url", url}, {"service_name", name}, {"ca_file", ca_file}, {"headers", header_names}});
    try {
        return std::make_unique<platform::otlp::Exporter>(
            platform::otlp::ExporterOptions{.url = url,
                                            .service_name = name,
                                            .headers = std::move(*headers),
                                            .ca_file = ca_file},
            log.with_component("otlp"), registry, clock);
    } catch (const std::exception& e) {
        log.error("spans are not exported: the collector's CA certificates did not load",
                  {{"error", e.what()}});
        return nullptr;
    }
}

std::string instance_name() {
    char host[256] = {};
    ::gethostname(host, sizeof host - 1);
    return std::string{host} + ":" + std::to_string(::getpid());
}

int run_until_stopped(StopSignals& signals, platform::http::Server& server,
                      const std::vector<Loop>& loops, const platform::Logger& log) {
    std::atomic<bool> stop{false};
    std::vector<std::thread> threads;
    for (const auto& loop : loops) threads.emplace_back([&stop, &loop] { loop(stop); });
    signals.wait();
    log.info("stopping");
    stop = true;
    for (auto& t : threads) t.join();
    server.stop(std::chrono::seconds(5));
    log.info("stopped");
    return 0;
}

std::optional<int> agree_on_partitions(StopSignals* signals, const std::string& database_url,
                                       int& partitions, PartitionRole role,
                                       const platform::Logger& log, eventstore::ShardMap* map) {
    std::string last_error;
    for (;;) {
        try {
            platform::pg::Session connection{database_url, "ordo-partition-count"};
            pqxx::work txn{connection};
            // Adopted afresh on every attempt: one that failed decided nothing.
            int count = partitions;
            if (count == kAdoptPartitions) {
                count = role == PartitionRole::record
                            ? eventstore::adopt_partition_count(txn, eventstore::kDefaultPartitions)
                            : eventstore::recorded_partition_count(txn).value_or(
                                  eventstore::kDefaultPartitions);
            }
            if (count == 0) {
                // No count of its own: the map as written decides.
            } else if (role == PartitionRole::record) {
                eventstore::claim_partition_count(txn, count);
            } else {
                eventstore::check_partition_count(txn, count);
            }
            if (map) {
                *map = eventstore::shard_map_for(txn, count);
                // Every shard reachable with this service's URL: a URL that cannot be pointed
                // at a shard is refused here, once, with the reason.
                for (const auto& shard : map->shards()) {
                    (void)eventstore::shard_url(database_url, shard);
                }
            }
            txn.commit();
            partitions = count;
            return std::nullopt;
        } catch (const eventstore::PartitionCountMismatch& e) {
            log.error(
                "refusing to start: wrong partition count",
                {{"recorded", e.recorded()}, {"configured", partitions}, {"error", e.what()}});
            return 2;
        } catch (const platform::InvalidInput& e) {
            log.error("refusing to start: the shard map cannot be used", {{"error", e.what()}});
            return 2;
        } catch (const std::exception& e) {
            if (!signals) {
                log.error(
                    "cannot check the partition count (is the database up and migrated? "
                    "`ordo migrate`)",
                    {{"error", e.what()}});
                return 2;
            }
            if (e.what() != last_error) {
                log.warn(
                    "waiting for the database to check the partition count (is it up and "
                    "migrated?)",
                    {{"error", e.what()}});
                last_error = e.what();
            }
        }
        if (signals->wait_for(std::chrono::seconds(1))) return 0;
    }
}

}  // namespace ordo::app
