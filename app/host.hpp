#pragma once

// The hosting pieces every `ordo serve` command shares.

#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "eventstore/shard_map.hpp"
#include "platform/core/log.hpp"
#include "platform/http/http_server.hpp"
#include "platform/http/otlp.hpp"

// What every `ordo serve` process does the same way: stop signals, addresses, tokens, the
// HTTP server, a name for this instance.
namespace ordo::app {

// Blocks SIGINT, SIGTERM and SIGHUP in this thread and in every thread started after it, so
// that they arrive only through wait(). Construct first thing in a `serve` command. SIGHUP
// calls the hang-up handler (reloading what the process can reload) and waiting goes on; a
// process without one ignores it.
class StopSignals {
   public:
    StopSignals();
    // Waits up to `tick`; true when a stop signal arrived.
    bool wait_for(std::chrono::seconds tick);
    void wait();
    // Adds a hang-up handler; all run in the order added.
    void on_hangup(std::function<void()> handler) { on_hangup_.push_back(std::move(handler)); }

   private:
    sigset_t set_;
    std::vector<std::function<void()>> on_hangup_;
};

std::optional<std::pair<std::string, std::uint16_t>> parse_address(const std::string& address);

// The API tokens of a service listening on `address`, from the token file (see
// platform/http/api_tokens.hpp). nullopt (logged) when the service must not start: the file is
// missing, unreadable, writable by others or empty; ORDO_API_TOKENS (the old raw-token list)
// is set; or there is no file and the service was not told to run without
// (`--insecure-no-auth`), or was told so but listens beyond loopback. A null set means no
// authentication.
std::optional<std::shared_ptr<const platform::http::TokenSet>> api_tokens(
    const std::string& file, bool insecure_no_auth, const std::string& address,
    const platform::Logger& log);

// Reloads the token file into `server` on SIGHUP; a file that no longer loads leaves the
// tokens in force as they were (logged, and counted in
// ordo_api_token_reloads_total{outcome="failed"}). No file, nothing to reload.
void reload_tokens_on_hangup(StopSignals& signals, platform::http::Server& server,
                             const std::string& file, const platform::Logger& log,
                             platform::metrics::Registry& registry);

// A base URL clients may be redirected to with their token: https, or http to a loopback
// address ("http://127.0.0.1:8080").
bool is_safe_redirect_base(const std::string& url);

// True for an address on the loopback interface: 127.0.0.0/8 or ::1 (the server listens on
// addresses, not names).
bool is_loopback(const std::string& host);

// The contents of a secret file (a webhook signing secret, say), refused unless it belongs to
// root or this service's user and neither group nor others may read or write it (0600 or
// 0400): a secret others can read is not one. Throws std::runtime_error saying why.
std::string read_secret_file(const std::string& file);

// Raises this process's soft open-file limit to `needed` (up to the hard limit; logged when
// that is lower), so that the connection caps, not the limit, decide what is refused.
void raise_file_limit(std::size_t needed, const platform::Logger& log);
// Files a service opens beside its HTTP connections: database pools, NATS, logs.
inline constexpr std::size_t kFilesBesideConnections = 512;

// HTTPS for a service's listener (--tls-cert-file, --tls-key-file: both or neither).
struct ListenerTls {
    std::string cert_file;  // PEM certificate chain, leaf first
    std::string key_file;   // PEM private key, unencrypted
    // Serve plain HTTP beyond loopback although the server takes bearer tokens: TLS ends in a
    // proxy in front.
    bool insecure_no_tls = false;
};

// Starts the component's HTTP server on `address` (raising the open-file limit for its
// connection cap), over TLS when `tls` names the files; SIGHUP then reloads them, and a reload
// that fails keeps the certificate in use (logged, counted in
// ordo_tls_reloads_total{outcome="failed"}). A server that takes bearer tokens refuses plain
// HTTP beyond loopback unless told `insecure_no_tls`: a token on plain HTTP is public.
// nullptr (logged) when it must not or cannot start: only one of the files given, a
// certificate or key that does not load, or an address it cannot listen on.
std::unique_ptr<platform::http::Server> start_server(
    StopSignals& signals, const std::string& address, const ListenerTls& tls,
    platform::http::ServerOptions options, platform::http::Router router,
    const platform::Logger& log, platform::metrics::Registry& registry);

// The span exporter of service `service` ("ordo-command", ...) when
// OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, used as is) is set;
// OTEL_SERVICE_NAME overrides the name. An https:// collector is verified against
// OTEL_EXPORTER_OTLP_TRACES_CERTIFICATE, OTEL_EXPORTER_OTLP_CERTIFICATE or ORDO_TLS_CA_FILE
// (the first set), else the system's CAs. nullptr when tracing export is off. Declare it
// before the server and workers that record into it, so that it outlives them.
std::unique_ptr<platform::otlp::Exporter> span_exporter(const std::string& service,
                                                        const platform::Logger& log,
                                                        platform::metrics::Registry& registry);

// Runs each loop on a thread of its own until a stop signal arrives, then sets the stop
// flag, joins them and stops `server` (letting requests in flight finish); returns 0.
using Loop = std::function<void(const std::atomic<bool>& stop)>;
int run_until_stopped(StopSignals& signals, platform::http::Server& server,
                      const std::vector<Loop>& loops, const platform::Logger& log);

// Before a process that works per partition starts its work: a `record`er (relay, projector,
// sagas) records its partition count in the database if none is recorded yet
// (eventstore::claim_partition_count); a `compare`r (the query service, `ordo rebuild`)
// only checks it against the recorded one (check_partition_count). A service (`signals`
// given) retries every second while the database cannot answer — down, or not migrated
// yet — logging each new error once, so it may start before its database; a one-shot
// command (no `signals`) tries once. Returns nullopt to go on, else the exit code: 2
// (logged, naming both counts) on a mismatch or, for a one-shot command, any failure; 0
// when a stop signal came first.
//
// With `map`, it also reads the shard map in the same transaction (eventstore::shard_map_for:
// the implicit one-shard map when none is written) into *map; a written map of another
// partition count is a mismatch too. `partitions` 0 (a service with no count of its own, the
// command service) records and compares nothing and takes the map as written.
//
// `partitions` is the count the service was configured with, or kAdoptPartitions when it was
// given none: it then takes the count recorded in the database, or the default
// (eventstore::kDefaultPartitions) for a store that has none recorded yet, and it says so in
// `partitions`. So a store keeps the count it was deployed with whatever the default of a
// later release, and only a count given explicitly can disagree with it.
enum class PartitionRole { record, compare };
inline constexpr int kAdoptPartitions = -1;
std::optional<int> agree_on_partitions(StopSignals* signals, const std::string& database_url,
                                       int& partitions, PartitionRole role,
                                       const platform::Logger& log,
                                       eventstore::ShardMap* map = nullptr);

// "<host>:<pid>", naming this process in checkpoints and logs.
std::string instance_name();

}  // namespace ordo::app
