// Append throughput of the event store beside raw PostgreSQL INSERT throughput (pgbench with
// a custom script into a table of the same shape) and beside two public PostgreSQL event
// stores, Message DB (its SQL, driven by pgbench calling write_message) and Emmett's
// PostgreSQL store (appendToStream from Node), all measured in the same run on the same
// cluster in one fresh database, with the ratios: the peers do the same job (append with an
// optimistic concurrency check) and show what that job costs elsewhere.
// Ordo's appends are measured twice more through the shard routing (eventstore::Shards):
// over one shard, and over two shards, two databases of the stack (on its second cluster
// when it runs two, ORDO_PG_SHARDS=2), each stream on its partition's shard. On one machine
// two shards share its cores: the ratio shows what routing costs, not what N machines give.
// Run through bench/append/run.sh, which installs the peers (ORDO_BENCH_PEERS=0 skips them).
#include <sys/wait.h>

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <sstream>
#include <thread>

#include <pqxx/pqxx>

#include "bench/support/scratch_database.hpp"
#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/pg_shards.hpp"
#include "eventstore/schema.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/config.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"

using namespace ordo;
using ordo::bench::required;
using Clock = std::chrono::steady_clock;

namespace {

struct Scenario {
    std::string key;  // for ORDO_BENCH_APPEND_ONLY
    std::string name;
    int writers;
    int batch;
};

// The scenarios ORDO_BENCH_APPEND_ONLY names (keys, space-separated), all when it is unset.
std::vector<Scenario> only_scenarios(std::vector<Scenario> all) {
    const auto only = platform::env("ORDO_BENCH_APPEND_ONLY");
    if (!only) return all;
    std::vector<Scenario> chosen;
    std::istringstream words{*only};
    std::string keys;
    for (std::string word; words >> word;) {
        auto it =
            std::find_if(all.begin(), all.end(), [&](const auto& s) { return s.key == word; });
        if (it == all.end()) {
            for (const auto& s : all) keys += " " + s.key;
            throw std::runtime_error("ORDO_BENCH_APPEND_ONLY: one or more of" + keys + ", not " +
                                     word);
        }
        if (std::any_of(chosen.begin(), chosen.end(), [&](const auto& s) { return s.key == word; }))
            throw std::runtime_error("ORDO_BENCH_APPEND_ONLY names " + word + " twice");
        chosen.push_back(*it);
    }
    if (chosen.empty()) throw std::runtime_error("ORDO_BENCH_APPEND_ONLY names no scenario");
    return chosen;
}

// `text` as one single-quoted word for /bin/sh.
std::string shell_quote(const std::string& text) {
    std::string out = "'";
    for (char c : text) out += c == '\'' ? std::string{"'\\''"} : std::string(1, c);
    return out + "'";
}

struct CommandResult {
    int status;  // the exit status, or -1 when the command did not exit normally
    std::string output;
};

// Runs `cmd` through /bin/sh; returns its exit status and its output (stdout and stderr).
CommandResult run_command(const std::string& cmd) {
    std::FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
    if (!pipe) throw std::runtime_error("cannot run: " + cmd);
    std::string output;
    std::array<char, 4096> buffer{};
    while (auto n = std::fread(buffer.data(), 1, buffer.size(), pipe))
        output.append(buffer.data(), n);
    int status = ::pclose(pipe);
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, output};
}

// The peer event stores' install folder, or why they are not measured in this run.
struct Peers {
    std::filesystem::path dir;  // node_modules and the Emmett driver script; empty when off
    std::string why_not;        // set when off
    bool on() const { return why_not.empty(); }
};

// Reads ORDO_BENCH_PEERS (1, the default, or 0) and ORDO_BENCH_PEERS_DIR (the folder
// bench/append/peers/install.sh installed into) and checks that node and the packages are
// there.
Peers find_peers() {
    auto setting = platform::env("ORDO_BENCH_PEERS").value_or("1");
    if (setting == "0") return {{}, "ORDO_BENCH_PEERS=0"};
    if (setting != "1") throw std::runtime_error("ORDO_BENCH_PEERS must be 0 or 1, not " + setting);
    auto dir = platform::env("ORDO_BENCH_PEERS_DIR");
    if (!dir || dir->empty())
        return {{},
                "ORDO_BENCH_PEERS_DIR is not set (bench/append/run.sh installs the peers "
                "and sets it)"};
    if (run_command("node --version").status != 0) return {{}, "node is not installed"};
    std::filesystem::path folder{*dir};
    if (!std::filesystem::exists(folder / "installed.lock") ||
        !std::filesystem::exists(folder / "emmett_append.mjs"))
        return {{},
                "they are not installed in " + folder.string() +
                    " (is npm installed? see bench/append/peers/install.sh)"};
    return {folder, ""};
}

// Appends for `seconds` with `writers` threads, each over its own 100 streams with exact
// expected versions; returns events per second.
double measure_ordo(eventstore::Shards& shards, const Scenario& s, int seconds, int round,
                    const std::string& tag) {
    std::atomic<long> events{0};
    auto stop_at = Clock::now() + std::chrono::seconds(seconds);
    std::vector<std::thread> threads;
    auto started = Clock::now();
    for (int w = 0; w < s.writers; ++w) {
        threads.emplace_back([&, w] {
            std::vector<std::int64_t> versions(100, 0);
            platform::IdGenerator ids;
            auto trace = ids.new_trace();
            for (long i = 0; Clock::now() < stop_at; ++i) {
                auto k = static_cast<std::size_t>(i % 100);
                std::vector<eventstore::NewEvent> batch;
                for (int b = 0; b < s.batch; ++b) {
                    batch.push_back(
                        {ids.uuid_v4(),
                         "StockReceived",
                         {{"sku", "sku-1"}, {"quantity", 1}},
                         {trace.trace_id_hex(), trace.span_id_hex(), "c", "c", "cmd", "bench"}});
                }
                auto stream = "bench-" + tag + "r" + std::to_string(round) + "w" +
                              std::to_string(w) + "s" + std::to_string(k);
                auto expected = versions[k] == 0 ? eventstore::ExpectedVersion::no_stream()
                                                 : eventstore::ExpectedVersion::exact(versions[k]);
                versions[k] = shards.of(stream).append(stream, expected, batch).last_version;
                events += s.batch;
            }
        });
    }
    for (auto& t : threads) t.join();
    double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    return static_cast<double>(events.load()) / elapsed;
}

// The URL without its password, for a command line: pgbench, psql and the Emmett driver find
// the password in PGPASSFILE, which the stack's settings name.
std::string without_password(const std::string& url) {
    auto scheme = url.find("://");
    auto at = url.find('@');
    if (scheme == std::string::npos || at == std::string::npos) return url;
    auto colon = url.find(':', scheme + 3);
    if (colon == std::string::npos || colon > at) return url;
    return url.substr(0, colon) + url.substr(at);
}

// The payload and metadata every column writes, as SQL literals.
constexpr const char* kPayloadSql = R"('{"sku": "sku-1", "quantity": 1}')";
constexpr const char* kMetadataSql =
    "'{\"trace_id\": \"0af7651916cd43dd8448eb211c80319c\", \"span_id\": "
    "\"b7ad6b7169203331\", \"correlation_id\": \"c\", \"causation_id\": \"c\", "
    "\"command_id\": \"cmd\", \"actor\": \"bench\"}'";

// Runs pgbench with the custom `script` for the scenario's writers (one connection each) and
// `seconds`; `options` go before the database URL, `environment` (VAR=value words) before
// the command. Returns transactions per second; a failed or aborted run is an error.
double run_pgbench(const std::string& url, const std::string& script, const Scenario& s,
                   int seconds, const std::string& options = "",
                   const std::string& environment = "") {
    // A private folder of a random name for the script, not a guessable path in /tmp.
    std::string folder = (std::filesystem::temp_directory_path() / "ordo-bench-XXXXXX").string();
    if (!::mkdtemp(folder.data())) throw std::runtime_error("cannot create a private folder");
    const std::string file = folder + "/script.sql";
    std::ofstream{file} << script;
    std::string cmd = environment + " pgbench -n -f " + shell_quote(file) + " -c " +
                      std::to_string(s.writers) + " -j " + std::to_string(std::min(s.writers, 4)) +
                      " -T " + std::to_string(seconds) + " " + options + " " +
                      shell_quote(without_password(url));
    auto result = run_command(cmd);
    std::filesystem::remove_all(folder);
    double tps = 0;
    auto at = result.output.find("\ntps = ");
    if (at != std::string::npos) std::sscanf(result.output.c_str() + at, "\ntps = %lf", &tps);
    if (result.status != 0 || tps == 0 || result.output.find("aborted") != std::string::npos)
        throw std::runtime_error("pgbench failed:\n" + result.output);
    return tps;
}

// pgbench inserting the scenario's batch into bench_raw per transaction; returns rows per
// second.
double measure_raw(const std::string& url, const Scenario& s, int seconds) {
    std::string script =
        "\\set s random(1, 1000000000000000)\n"
        "INSERT INTO bench_raw (stream_id, category, stream_version, event_id, event_type, "
        "payload, metadata) SELECT 'bench-' || :s, 'bench', g, gen_random_uuid(), "
        "'StockReceived', " +
        std::string{kPayloadSql} + ", " + kMetadataSql + " FROM generate_series(1, " +
        std::to_string(s.batch) + ") AS g;\n";
    return run_pgbench(url, script, s, seconds) * s.batch;
}

// Message DB's functions name its objects without their schema: its documentation has
// callers put message_store on the search path.
constexpr const char* kMessageDbSearchPath =
    "PGOPTIONS='-c client_min_messages=warning -c search_path=message_store,public'";

// Installs Message DB's SQL from its npm package into the benchmark's database, as the
// administrator, in the order of the package's install scripts (database/install.sh and the
// install-*.sh it sources). Adapted: no `message_store` database (the benchmark's own is
// used), and neither the `message_store` role (roles/) nor its grants (privileges/), since
// the benchmark writes as the administrator, as the raw INSERT baseline does.
void install_message_db(const Peers& peers, const std::string& url) {
    auto sql = peers.dir / "node_modules/@eventide/message-db/database";
    const std::vector<std::string> files = {"extensions/pgcrypto.sql",
                                            "schema/message-store.sql",
                                            "types/message.sql",
                                            "tables/messages.sql",
                                            "functions/message-store-version.sql",
                                            "functions/hash-64.sql",
                                            "functions/acquire-lock.sql",
                                            "functions/category.sql",
                                            "functions/is-category.sql",
                                            "functions/id.sql",
                                            "functions/cardinal-id.sql",
                                            "functions/stream-version.sql",
                                            "functions/write-message.sql",
                                            "functions/get-stream-messages.sql",
                                            "functions/get-category-messages.sql",
                                            "functions/get-last-stream-message.sql",
                                            "indexes/messages-id.sql",
                                            "indexes/messages-stream.sql",
                                            "indexes/messages-category.sql",
                                            "views/stream-summary.sql",
                                            "views/type-summary.sql",
                                            "views/stream-type-summary.sql",
                                            "views/type-stream-summary.sql",
                                            "views/category-type-summary.sql",
                                            "views/type-category-summary.sql"};
    std::string cmd = std::string{kMessageDbSearchPath} + " psql -q -v ON_ERROR_STOP=1";
    for (const auto& f : files) {
        if (!std::filesystem::exists(sql / f))
            throw std::runtime_error("Message DB's " + (sql / f).string() + " is missing");
        cmd += " -f " + shell_quote((sql / f).string());
    }
    auto result = run_command(cmd + " " + shell_quote(without_password(url)));
    if (result.status != 0)
        throw std::runtime_error("installing Message DB failed:\n" + result.output);
}

// pgbench calling Message DB's write_message with exact expected versions: client c writes
// to its 100 streams bench-r<round>c<c>s<k> in turn (k = n % 100 on its n-th transaction),
// so the stream stands at version (n / 100) * batch - 1 (-1: no stream). A transaction is
// one statement that writes the batch's messages in order, the i-th expecting version
// e + i, and returns n + 1 for the next one. Returns messages per second.
// All streams are in one category, `bench`, as in the other columns (one entity type);
// write_message locks the category for the transaction, so Message DB's writers take turns.
double measure_message_db(const std::string& url, const Scenario& s, int seconds, int round) {
    const auto batch = std::to_string(s.batch);
    std::string script = "\\set k :n % 100\n";
    script += "\\set e (:n / 100) * " + batch + " - 1\n";
    script += "SELECT max(message_store.write_message(gen_random_uuid()::varchar, 'bench-r" +
              std::to_string(round) + "c' || :client_id || 's' || :k, 'StockReceived', ";
    script += std::string{kPayloadSql} + ", " + kMetadataSql + ", :e + g)) AS last, ";
    script += ":n + 1 AS n FROM generate_series(0, " + batch + " - 1) AS g \\gset\n";
    return run_pgbench(url, script, s, seconds, "-D n=0", kMessageDbSearchPath) * s.batch;
}

// Emmett's appendToStream from Node (peers/emmett_append.mjs) for the scenario; returns
// events per second.
double measure_emmett(const Peers& peers, const std::string& url, const Scenario& s, int seconds,
                      int round) {
    std::string cmd = "node " + shell_quote((peers.dir / "emmett_append.mjs").string()) + " " +
                      shell_quote(without_password(url)) + " " + std::to_string(s.writers) + " " +
                      std::to_string(s.batch) + " " + std::to_string(seconds) + " " +
                      std::to_string(round);
    auto result = run_command(cmd);
    double rate = 0;
    auto at = result.output.find("events/s = ");
    if (at != std::string::npos) std::sscanf(result.output.c_str() + at, "events/s = %lf", &rate);
    if (result.status != 0 || rate == 0)
        throw std::runtime_error("the Emmett driver failed:\n" + result.output);
    return rate;
}

// A rate or a ratio for the table, or n/a when the peers are off.
std::string cell(bool on, double value, int decimals) {
    if (!on) return "n/a";
    std::array<char, 32> text{};
    std::snprintf(text.data(), text.size(), "%.*f", decimals, value);
    return text.data();
}

}  // namespace

int main() try {
    auto seconds_setting = platform::env("ORDO_BENCH_SECONDS").value_or("5");
    int seconds = 0;
    if (std::sscanf(seconds_setting.c_str(), "%d", &seconds) != 1 || seconds < 1 ||
        std::to_string(seconds) != seconds_setting)
        throw std::runtime_error("ORDO_BENCH_SECONDS must be a whole number of seconds >= 1, not " +
                                 seconds_setting);
    std::vector<Scenario> scenarios =
        only_scenarios({{"1w", "single event, 1 writer", 1, 1},
                        {"4w", "single event, 4 writers", 4, 1},
                        {"16w", "single event, 16 writers", 16, 1},
                        {"batches", "100-event batches, 4 writers", 4, 100}});
    auto peers = find_peers();
    const bench::ScratchDatabase db{"append"};
    auto raw_url = db.url("ORDO_PG_ADMIN_URL");
    {
        pqxx::connection conn{raw_url};
        pqxx::work tx{conn};
        // The same shape as ordo.events, with the same keys and indexes.
        tx.exec(
            "CREATE TABLE bench_raw (global_position bigint GENERATED ALWAYS AS IDENTITY PRIMARY "
            "KEY, transaction_id xid8 NOT NULL DEFAULT pg_current_xact_id(), stream_id text NOT "
            "NULL, category text NOT NULL, stream_version bigint NOT NULL, event_id uuid NOT NULL "
            "UNIQUE, event_type text NOT NULL, schema_version int NOT NULL DEFAULT 1, payload "
            "jsonb NOT NULL, metadata jsonb NOT NULL, recorded_at timestamptz NOT NULL DEFAULT "
            "now(), UNIQUE (stream_id, stream_version));"
            "CREATE INDEX ON bench_raw (transaction_id, global_position);"
            "CREATE INDEX ON bench_raw ((metadata->>'trace_id'))");
        tx.commit();
    }
    if (peers.on()) install_message_db(peers, raw_url);
    platform::pg::Pool pool{{.url = db.url("ORDO_COMMAND_DATABASE_URL"),
                             .size = 16,
                             .preparers = {&eventstore::EventStore::prepare}}};

    eventstore::AppendNotifier notifier{pool.options().url, platform::Logger::null_logger()};
    eventstore::EventStore store{pool, &notifier};
    eventstore::OneShard one{store};
    // Two shards: this database, and one of its own, on the stack's second cluster if it
    // runs one. The same pool size per shard as the one shard has.
    const bench::ScratchDatabase second_db{"append", 1};
    auto location = [](const bench::ScratchDatabase& d, int id) {
        const auto url = d.url("ORDO_COMMAND_DATABASE_URL");
        const auto at = url.find('@') + 1;
        return eventstore::ShardLocation{id, url.substr(at, url.find('/', at) - at), d.name()};
    };
    eventstore::PgShards two{
        eventstore::ShardMap::spread(eventstore::kDefaultPartitions,
                                     {location(db, 0), location(second_db, 1)}),
        {.url = db.url("ORDO_COMMAND_DATABASE_URL"),
         .pool = {.size = 16, .name = "bench"},
         .refresh_every = std::chrono::milliseconds(0)},
        platform::Logger::null_logger()};
    std::printf("append benchmark: %d s per measurement, events per second\n", seconds);
    // Columns are two or more spaces apart (bench/all.sh splits on that); a ratio is ordo's
    // rate over the column before it.
    std::printf("%-30s %14s %16s %8s %14s %10s %14s %13s %14s %14s %9s\n", "scenario",
                "ordo append", "raw INSERT", "ratio", "Message DB", "ordo/MDB", "Emmett",
                "ordo/Emmett", "1 shard", "2 shards", "2sh/1sh");
    int round = 0;
    for (const auto& s : scenarios) {
        // The four in sequence, each alone on the cluster while it runs.
        double ordo_rate = measure_ordo(one, s, seconds, round, "a");
        double raw_rate = measure_raw(raw_url, s, seconds);
        double mdb_rate = peers.on() ? measure_message_db(raw_url, s, seconds, round) : 0;
        double emmett_rate = peers.on() ? measure_emmett(peers, raw_url, s, seconds, round) : 0;
        // One shard and two, back to back: the routing's cost against the same run's.
        double one_rate = measure_ordo(one, s, seconds, round, "o");
        double two_rate = measure_ordo(two, s, seconds, round, "t");
        ++round;
        std::printf("%-30s %14.0f %16.0f %8.2f %14s %10s %14s %13s %14.0f %14.0f %9.2f\n",
                    s.name.c_str(), ordo_rate, raw_rate, ordo_rate / raw_rate,
                    cell(peers.on(), mdb_rate, 0).c_str(),
                    cell(peers.on(), ordo_rate / mdb_rate, 2).c_str(),
                    cell(peers.on(), emmett_rate, 0).c_str(),
                    cell(peers.on(), ordo_rate / emmett_rate, 2).c_str(), one_rate, two_rate,
                    two_rate / one_rate);
        std::fflush(stdout);
    }
    if (!peers.on())
        std::printf("peer event stores not measured (n/a): %s\n", peers.why_not.c_str());
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "bench/append: %s\n", e.what());
    return 1;
}
