// Append throughput of the event store beside raw PostgreSQL INSERT throughput (pgbench with
// a custom script into a table of the same shape), measured in the same run on the same
// cluster, with the ratio. Run through bench/append/run.sh.
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/schema.hpp"
#include "platform/core/config.hpp"
#include "platform/core/trace.hpp"
#include "platform/pg/pg.hpp"

using namespace ordo;
using Clock = std::chrono::steady_clock;

namespace {

struct Scenario {
    std::string name;
    int writers;
    int batch;
};

std::string required(const char* name) {
    auto v = platform::env(name);
    if (!v) throw std::runtime_error(std::string{name} + " is not set (source the stack.env)");
    return *v;
}

// Appends for `seconds` with `writers` threads, each over its own 100 streams with exact
// expected versions; returns events per second.
double measure_ordo(platform::pg::Pool& pool, eventstore::AppendNotifier& notifier,
                    const Scenario& s, int seconds, int round) {
    eventstore::EventStore store{pool, &notifier};
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
                auto stream = "bench-r" + std::to_string(round) + "w" + std::to_string(w) + "s" +
                              std::to_string(k);
                auto expected = versions[k] == 0 ? eventstore::ExpectedVersion::no_stream()
                                                 : eventstore::ExpectedVersion::exact(versions[k]);
                versions[k] = store.append(stream, expected, batch).last_version;
                events += s.batch;
            }
        });
    }
    for (auto& t : threads) t.join();
    double elapsed = std::chrono::duration<double>(Clock::now() - started).count();
    return static_cast<double>(events.load()) / elapsed;
}

// pgbench with a custom INSERT script; returns rows per second.
// The URL without its password, for a command line: pgbench finds the password in
// PGPASSFILE, which the stack's settings name.
std::string without_password(const std::string& url) {
    auto scheme = url.find("://");
    auto at = url.find('@');
    if (scheme == std::string::npos || at == std::string::npos) return url;
    auto colon = url.find(':', scheme + 3);
    if (colon == std::string::npos || colon > at) return url;
    return url.substr(0, colon) + url.substr(at);
}

double measure_raw(const std::string& url, const Scenario& s, int seconds) {
    // A private folder of a random name for the script, not a guessable path in /tmp.
    std::string folder = (std::filesystem::temp_directory_path() / "ordo-bench-XXXXXX").string();
    if (!::mkdtemp(folder.data())) throw std::runtime_error("cannot create a private folder");
    const std::string script = folder + "/insert.sql";
    {
        std::ofstream out{script};
        out << "\\set s random(1, 1000000000000000)\n"
               "INSERT INTO bench_raw (stream_id, category, stream_version, event_id, event_type, "
               "payload, metadata) SELECT 'bench-' || :s, 'bench', g, gen_random_uuid(), "
               "'StockReceived', '{\"sku\": \"sku-1\", \"quantity\": 1}', "
               "'{\"trace_id\": \"0af7651916cd43dd8448eb211c80319c\", \"span_id\": "
               "\"b7ad6b7169203331\", \"correlation_id\": \"c\", \"causation_id\": \"c\", "
               "\"command_id\": \"cmd\", \"actor\": \"bench\"}' FROM generate_series(1, "
            << s.batch << ") AS g;\n";
    }
    std::string cmd = "pgbench -n -f " + script + " -c " + std::to_string(s.writers) + " -j " +
                      std::to_string(std::min(s.writers, 4)) + " -T " + std::to_string(seconds) +
                      " '" + without_password(url) + "' 2>&1";
    std::FILE* pipe = ::popen(cmd.c_str(), "r");
    if (!pipe) throw std::runtime_error("cannot run pgbench");
    char line[512];
    double tps = 0;
    std::string all;
    while (std::fgets(line, sizeof line, pipe)) {
        all += line;
        if (std::sscanf(line, "tps = %lf", &tps) == 1) break;
    }
    while (std::fgets(line, sizeof line, pipe)) {
    }
    ::pclose(pipe);
    std::filesystem::remove_all(folder);
    if (tps == 0) throw std::runtime_error("pgbench failed:\n" + all);
    return tps * s.batch;
}

}  // namespace

int main() try {
    int seconds = std::stoi(platform::env("ORDO_BENCH_SECONDS").value_or("5"));
    auto admin_url = required("ORDO_PG_ADMIN_URL");
    std::string db = "ordo_bench_" + platform::new_uuid().substr(0, 8);
    {
        pqxx::connection admin{admin_url};
        pqxx::nontransaction tx{admin};
        tx.exec("CREATE DATABASE " + db + " OWNER ordo_migrator");
    }
    auto migrator_url = platform::with_database(required("ORDO_MIGRATOR_URL"), db);
    platform::pg::migrate(migrator_url, eventstore::migrations(), platform::Logger::null_logger());
    auto raw_url = platform::with_database(admin_url, db);
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
    platform::pg::Pool pool{
        {.url = platform::with_database(required("ORDO_COMMAND_DATABASE_URL"), db),
         .size = 16,
         .preparers = {&eventstore::EventStore::prepare}}};

    eventstore::AppendNotifier notifier{pool.options().url, platform::Logger::null_logger()};
    std::vector<Scenario> scenarios = {{"single event, 1 writer", 1, 1},
                                       {"single event, 4 writers", 4, 1},
                                       {"single event, 16 writers", 16, 1},
                                       {"100-event batches, 4 writers", 4, 100}};
    std::printf("append benchmark: %d s per measurement, events per second\n", seconds);
    std::printf("%-30s %14s %16s %8s\n", "scenario", "ordo append", "raw INSERT", "ratio");
    int round = 0;
    for (const auto& s : scenarios) {
        double ordo_rate = measure_ordo(pool, notifier, s, seconds, round++);
        double raw_rate = measure_raw(raw_url, s, seconds);
        std::printf("%-30s %14.0f %16.0f %8.2f\n", s.name.c_str(), ordo_rate, raw_rate,
                    ordo_rate / raw_rate);
        std::fflush(stdout);
    }
    pqxx::connection admin{admin_url};
    pqxx::nontransaction tx{admin};
    tx.exec("DROP DATABASE " + db + " WITH (FORCE)");
    return 0;
} catch (const std::exception& e) {
    std::fprintf(stderr, "bench/append: %s\n", e.what());
    return 1;
}
