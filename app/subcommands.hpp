#pragma once

// The options and entry points of the `ordo` subcommands.

#include <string>
#include <vector>

#include "app/host.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/log.hpp"
#include "platform/nats/nats.hpp"
#include "projections/rebuild.hpp"

// The `ordo` binary's subcommands. Only this layer reads configuration and knows every
// component; each subcommand wires the pieces it runs.
namespace ordo::app {

int run_migrate(const std::string& migrator_url, const platform::Logger& log);

struct DevOptions {
    std::string data_dir;      // the stack's folder (Postgres cluster, NATS store)
    std::string stack_script;  // deploy/stack.sh, or deploy/cluster.sh with `ha`
    // The highly available cluster (deploy/cluster.sh) with two instances of every service,
    // on the addresses its stack.env names (ORDO_HA_<SERVICE>_ADDRS).
    bool ha = false;
    bool fresh = false;  // wipe the data first
    // PostgreSQL clusters, one per shard of the store (docs/scaling.md): the stack starts
    // them, the first map spreads the partitions over them, and each shard gets its relay.
    int shards = 1;
    bool stop_stack = true;  // stop Postgres and NATS on exit
    // Also run Prometheus and Alertmanager (this script, start/stop) against the services.
    bool monitoring = false;
    std::string monitoring_script;  // deploy/monitoring.sh
    std::vector<std::string> services{"command", "query", "relay", "projector",
                                      "sagas"};  // which `ordo serve` components run
};

struct ServeOptions {
    std::string component = "command";
    std::string address = "127.0.0.1:8080";
    std::string database_url;
    platform::nats::ClientSettings nats;  // ORDO_<SERVICE>_NATS_URL, ORDO_NATS_CA_FILE
    std::string tokens_file;              // ORDO_API_TOKENS_FILE; see platform/http/api_tokens.hpp
    bool insecure_no_auth = false;
    ListenerTls tls;
    std::size_t pool_size = 16;
    std::size_t max_connections = 1024;
    std::size_t max_connections_per_client = 256;  // from one client address
    // query: where the Command API answers, for the 308s of the moved dead-letter routes;
    // https, or http on a loopback address. Empty: they answer 410.
    std::string command_url;
};

int run_serve(const ServeOptions& options, const platform::Logger& log);

// `ordo serve query`: the Query API, on the read-only ordo_query role.
int run_query(const ServeOptions& options, int partitions, const platform::Logger& log);

struct ProjectorOptions {
    std::string address = "127.0.0.1:8091";  // health and metrics
    std::string database_url;
    platform::nats::ClientSettings nats;  // ORDO_<SERVICE>_NATS_URL, ORDO_NATS_CA_FILE
    int partitions = kAdoptPartitions;    // the store's (agree_on_partitions)
    std::string stream = eventstore::kDefaultJetStream;
    std::string subject_prefix = eventstore::kDefaultSubjectPrefix;
    std::string dead_letter_policy;  // "orders=halt,inventory=skip"; unnamed ones skip
    std::string breaker_bucket = "ordo_breakers";  // NATS KV bucket; empty: no sharing
    int nats_replicas = 1;                         // the bucket's copies over a JetStream cluster
    int breaker_cool_down_ms = 1000;
    int breaker_consecutive_failures = 5;
    int statement_timeout_ms = 5000;
    int live_buffer_mib = 16;  // live events held in memory, all partitions together
    std::string webhook_url;   // the webhook projection runs when set
    std::string webhook_event_types;
    int webhook_timeout_ms = 5000;
    std::string webhook_secret_file;  // ORDO_WEBHOOK_SECRET_FILE: whsec_… lines, mode 0600
    std::string tls_ca_file;          // ORDO_TLS_CA_FILE: CAs the webhook's https:// trusts
    ListenerTls tls;
};

int run_projector(const ProjectorOptions& options, const platform::Logger& log);

// `ordo serve relay`: the event store's relay to JetStream (relay::Relay).
struct RelayServeOptions {
    std::string address = "127.0.0.1:8090";  // health and metrics
    std::string database_url;
    platform::nats::ClientSettings nats;  // ORDO_<SERVICE>_NATS_URL, ORDO_NATS_CA_FILE
    int partitions = kAdoptPartitions;    // the store's (agree_on_partitions)
    std::string stream = eventstore::kDefaultJetStream;
    std::string subject_prefix = eventstore::kDefaultSubjectPrefix;
    int duplicate_window_seconds = 120;
    int max_age_hours = 168;
    int nats_replicas = 1;  // the stream's copies over a JetStream cluster
    int shard = 0;          // the shard of the map this relay publishes
    ListenerTls tls;
};

int run_relay(const RelayServeOptions& options, const platform::Logger& log);

// `ordo shards init`, `add`, `move` and `list` (docs/scaling.md).
struct ShardsOptions {
    std::string database_url;  // the control database, as the migrator role
    int partitions = eventstore::kDefaultPartitions;
    std::vector<std::string> shards;  // init, add: "<id>=<hosts>/<database>" each
    bool json = false;                // list: one JSON object
    // init: a map already written with these shards and partitions is no error (`ordo dev
    // --shards` on a stack it set up before), also when moves have since emptied one of
    // them (registered here, no longer in the map; its partitions all stay fenced).
    bool if_absent = false;
    // move: the partition, the shard it goes to, or the rollback of its unfinished move.
    int partition = -1;
    int to = -1;
    bool rollback = false;
    // move: start even though the source shard holds command-log rows from before migration
    // 0017, which the move leaves behind (eventstore::unrouted_command_keys).
    bool ignore_unrouted_keys = false;
    int batch = 2000;       // move: events per copying transaction
    int wait_seconds = 30;  // move: for writes in flight when it fences the partition
};

// Migrates every shard, checks that none holds a stream of a partition the new map gives to
// another, and writes the first map (partitions spread round-robin). 0, or 2 (refused) / 1.
int run_shards_init(const ShardsOptions& options, const platform::Logger& log);
// Adds shards to a store's written map, each migrated, empty and fenced against every
// partition, owning none until a move gives it one. Re-runnable. 0, or 2 (refused) / 1.
int run_shards_add(const ShardsOptions& options, const platform::Logger& log);
// Moves one partition to another shard, or continues its unfinished move, or rolls it back
// (eventstore/partition_move.hpp). 0 when the partition is where it was asked to be; 2
// refused (nothing changed), 1 failed (run it again: every step is re-runnable).
int run_shards_move(const ShardsOptions& options, const platform::Logger& log);
// The map, and each registered shard's partitions, size and relay leader; 1 when a shard is
// unreachable.
int run_shards_list(const ShardsOptions& options, const platform::Logger& log);
// The ids of the shards the written map of the store at `database_url` names (a shard moves
// have emptied is not among them); {0} without a map. Throws when it cannot be read.
std::vector<int> mapped_shards(const std::string& database_url);
// 0 when the store at `database_url` has `shards` shards (1 without a map); 2 (logged) when its
// map names another number, 1 when it cannot be read.
int refuse_other_shard_count(const std::string& database_url, int shards,
                             const platform::Logger& log);

int run_dev(const DevOptions& options, const platform::Logger& log);

// `ordo serve sagas`: order fulfillment, orchestrated or choreographed.
struct SagasOptions {
    std::string address = "127.0.0.1:8092";  // health and metrics
    std::string database_url;
    platform::nats::ClientSettings nats;  // ORDO_<SERVICE>_NATS_URL, ORDO_NATS_CA_FILE
    std::string mode = "orchestration";
    int partitions = kAdoptPartitions;  // the store's (agree_on_partitions)
    std::string stream = eventstore::kDefaultJetStream;
    std::string subject_prefix = eventstore::kDefaultSubjectPrefix;
    int workers = 8;
    std::size_t pool_size = 16;
    int step_timeout_ms = 10'000;
    int fulfillment_timeout_ms = 30'000;
    int lock_timeout_ms = 2'000;
    ListenerTls tls;
    int live_buffer_mib = 16;  // the intake's live events held in memory
};

int run_sagas(const SagasOptions& options, const platform::Logger& log);

// `ordo dead-letters list|retry <id>|skip <id>`, on the command role (the same requests as
// the Command API's admin routes). Exit status 0 done,
// 1 failed, 4 no such letter, 5 not parked.
struct DeadLetterOptions {
    std::string action;  // list, retry, skip
    std::string database_url;
    std::int64_t id = 0;
    std::string projection;  // list filters
    std::string status;
    int limit = 100;
};

int run_dead_letters(const DeadLetterOptions& options, const platform::Logger& log);

// `ordo rebuild <projection>`: replays the event store into new tables and swaps them in.
// Exit status 0 done, 1 failed, 2 bad input, 4 refused (a live projector owns it).
struct RebuildCommandOptions {
    std::string projection;
    projections::RebuildOptions rebuild;
};

int run_rebuild(const RebuildCommandOptions& options, const platform::Logger& log);

// `ordo token new NAME --scopes …`: prints the token once and its line for the token file.
int run_token_new(const std::string& name, const std::string& scopes);

}  // namespace ordo::app
