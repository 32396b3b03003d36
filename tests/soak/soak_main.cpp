// ordo-soak: hours (or, in the test command, two minutes) of mixed load through the REST API
// while faults are injected at seeded random times, then a check of everything the clients
// were told, like a bank's books. Prints the seed, the plan, every fault as it happens and a
// table of figures; exits 0 only when nothing was lost, duplicated or violated.
//
// It runs against the local test stack (deploy/stack.sh; ORDO_STACK_DIR and the ports as for
// the tests) and restarts its PostgreSQL and nats-server: nothing else may use that stack
// meanwhile. Pointed at the highly available cluster (ORDO_STACK_DIR of deploy/cluster.sh),
// it kills NATS nodes and the PostgreSQL primary instead. See docs/reliability.md.
#include <CLI/CLI.hpp>

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>
#include <random>
#include <thread>

#include "tests/soak/checker.hpp"
#include "tests/soak/schedule.hpp"
#include "tests/soak/soak_stack.hpp"
#include "tests/soak/workload.hpp"

using namespace ordo::soak;
using namespace std::chrono_literals;

int main(int argc, char** argv) try {
    CLI::App app{"Mixed load with faults injected, then every acknowledged command checked"};
    int duration_s = 120, clients = 4, settle_s = 300, shards = 1;
    double rate = 20;
    std::uint64_t seed = std::random_device{}();
    std::string faults_text = "all", mode = "orchestration";
    int gap_min_ms = 2000, gap_max_ms = 5000, length_min_ms = 500, length_max_ms = 3000;
    app.add_option("--seconds", duration_s, "How long the load runs")->check(CLI::Range(5, 86400));
    app.add_option("--rate", rate, "Commands and reads per second, all clients together")
        ->check(CLI::Range(0.1, 10000.0));
    app.add_option("--clients", clients, "Client threads")->check(CLI::Range(1, 256));
    app.add_option("--seed", seed,
                   "Seed of the fault plan and the workload (printed; replay with it)")
        ->envname("ORDO_SOAK_SEED");
    app.add_option("--faults", faults_text,
                   "Fault kinds: all, none, or a list such as all,-pg-immediate or "
                   "kill:relay,pause:command,nats-restart");
    app.add_option("--mode", mode, "Saga mode")
        ->check(CLI::IsMember({"orchestration", "choreography"}));
    app.add_option("--shards", shards,
                   "1, or 2: the store sharded over the test stack's first two PostgreSQL "
                   "clusters")
        ->check(CLI::Range(1, 2));
    app.add_option("--gap-min-ms", gap_min_ms, "Least quiet time between faults")
        ->check(CLI::Range(0, 3'600'000));
    app.add_option("--gap-max-ms", gap_max_ms, "Most quiet time between faults")
        ->check(CLI::Range(0, 3'600'000));
    app.add_option("--fault-min-ms", length_min_ms, "Shortest fault")
        ->check(CLI::Range(0, 600'000));
    app.add_option("--fault-max-ms", length_max_ms, "Longest fault")->check(CLI::Range(0, 600'000));
    app.add_option("--settle-seconds", settle_s,
                   "How long the system may take to settle after the load")
        ->check(CLI::Range(1, 3600));
    CLI11_PARSE(app, argc, argv);
    if (gap_min_ms > gap_max_ms || length_min_ms > length_max_ms) {
        std::fprintf(stderr, "ordo-soak: a minimum above its maximum\n");
        return 2;
    }
    std::string error;
    auto kinds = parse_fault_specs(faults_text, error);
    if (!kinds) {
        std::fprintf(stderr, "ordo-soak: --faults: %s\n", error.c_str());
        return 2;
    }
    // The disk-full fault mounts a filesystem, which only root may: without root it is left
    // out, and said so, rather than failing the run.
    // The kinds the stack has no target for (a single server's stop on the cluster, a node of
    // the cluster on the single stack) are left out, and said so.
    const auto topology = stack_topology();
    std::string left_out;
    std::erase_if(*kinds, [&](const FaultSpec& s) {
        if (applies_to(s.kind, topology)) return false;
        left_out += (left_out.empty() ? "" : ", ") + s.name();
        return true;
    });
    if (!left_out.empty()) {
        std::printf("soak: left out on this %s: %s\n",
                    topology == Topology::kCluster ? "cluster" : "single-server stack",
                    left_out.c_str());
    }
    const auto is_disk_full = [](const FaultSpec& s) { return s.kind == FaultKind::kNatsDiskFull; };
    if (::geteuid() != 0 && std::any_of(kinds->begin(), kinds->end(), is_disk_full)) {
        std::erase_if(*kinds, is_disk_full);
        std::printf(
            "soak: nats-disk-full left out: mounting the NATS store's filesystem needs root\n");
    }

    const PlanOptions plan_options{.seed = seed,
                                   .duration = Millis{duration_s * 1000},
                                   .min_gap = Millis{gap_min_ms},
                                   .max_gap = Millis{gap_max_ms},
                                   .min_length = Millis{length_min_ms},
                                   .max_length = Millis{length_max_ms}};
    const auto plan = plan_faults(*kinds, plan_options);
    std::printf(
        "soak: seed %llu, %d s at %.1f/s from %d clients, saga mode %s, %d shard(s), %zu faults "
        "planned\n",
        static_cast<unsigned long long>(seed), duration_s, rate, clients, mode.c_str(), shards,
        plan.size());
    std::printf(
        "replay: --seed %llu --seconds %d --rate %g --clients %d --mode %s --shards %d --faults "
        "%s\n",
        static_cast<unsigned long long>(seed), duration_s, rate, clients, mode.c_str(), shards,
        faults_text.c_str());
    std::fflush(stdout);

    const bool nats_disk = std::any_of(kinds->begin(), kinds->end(), is_disk_full);
    SoakStack stack{mode, nats_disk, shards};
    const auto start = std::chrono::steady_clock::now();
    const auto wall_start = std::chrono::system_clock::now();
    const std::function<Millis()> now = [start] {
        return std::chrono::duration_cast<Millis>(std::chrono::steady_clock::now() - start);
    };

    std::vector<FaultRecord> done;
    std::thread injector{[&] {
        for (const auto& fault : plan) {
            if (auto wait = fault.at - now(); wait > 0ms) std::this_thread::sleep_for(wait);
            FaultRecord record{.planned = fault, .began = now()};
            try {
                stack.begin(fault);
                std::this_thread::sleep_for(fault.length);
                record.remedy = stack.end(fault);
            } catch (const std::exception& e) {
                record.error = e.what();
                try {
                    stack.ensure_all_up();
                } catch (const std::exception&) {
                }
            }
            record.ended = now();
            std::printf("  %8s  %-18s #%d  for %s%s%s%s%s\n", seconds_text(record.began).c_str(),
                        fault.spec.name().c_str(), fault.instance,
                        seconds_text(record.ended - record.began).c_str(),
                        record.remedy.empty() ? "" : "  then: ", record.remedy.c_str(),
                        record.error.empty() ? "" : "  FAILED: ", record.error.c_str());
            std::fflush(stdout);
            done.push_back(std::move(record));
        }
    }};

    const WorkloadOptions workload{
        .seed = seed, .clients = clients, .rate = rate, .duration = Millis{duration_s * 1000}};
    auto work =
        run_workload(workload, stack.client_ports("command"), stack.client_ports("query"), now);
    injector.join();
    stack.ensure_all_up();
    auto result = check(stack.database(), stack.second_shard(), stack.stream(), stack.subjects(),
                        {.event_types = SoakStack::kWebhookEventTypes, .log = stack.webhook_log()},
                        work, done, Millis{settle_s * 1000}, now);
    // Then every read model against a fresh rebuild, the projectors stopped as for any
    // offline rebuild.
    stack.stop("projector");
    auto rebuilt = differences_from_rebuild(stack.database(), SoakStack::kPartitions);

    // Figures.
    std::int64_t acked = 0, refused = 0, given_up = 0;
    for (const auto& c : work.commands) {
        if (c.status >= 200 && c.status < 300)
            ++acked;
        else if (c.status == 0)
            ++given_up;
        else
            ++refused;
    }
    std::printf("\nsoak figures (seed %llu)\n", static_cast<unsigned long long>(seed));
    std::printf("%-44s %12s\n", "figure", "value");
    auto figure = [](const std::string& name, const std::string& value) {
        std::printf("%-44s %12s\n", name.c_str(), value.c_str());
    };
    figure("commands acknowledged", std::to_string(acked));
    char rate_text[32];
    std::snprintf(rate_text, sizeof rate_text, "%.1f",
                  static_cast<double>(acked) * 1000 /
                      static_cast<double>(std::max<std::int64_t>(1, work.load_time.count())));
    figure("commands acknowledged per second", rate_text);
    figure("cancels refused (the order had ended)", std::to_string(refused));
    figure("commands given up (no answer in time)", std::to_string(given_up));
    figure("reads / answered 503 lagging / failed", std::to_string(work.reads) + " / " +
                                                        std::to_string(work.reads_lagging) + " / " +
                                                        std::to_string(work.reads_failed));
    figure("events stored", std::to_string(result.events));
    figure("JetStream messages", std::to_string(result.jetstream_messages));
    figure("webhook events / deliveries", std::to_string(result.webhook_events) + " / " +
                                              std::to_string(result.webhook_deliveries));
    figure("settled after the load",
           result.settled_after < 0ms ? "never" : seconds_text(result.settled_after));
    figure("read models equal to a fresh rebuild",
           rebuilt.empty() ? "all 5" : std::to_string(rebuilt.size()) + " differ");
    for (auto& d : rebuilt) result.violations.push_back(std::move(d));
    figure("events lost (must be 0)", std::to_string(result.lost));
    figure("effects duplicated (must be 0)", std::to_string(result.duplicated));
    // Per fault kind: how often, the longest stretch a client got no answer (503s, timeouts,
    // refused connections) that began under such a fault, and the longest it went on after
    // the fault was undone; the command attempts that failed under it, 503s and the others
    // (timeouts, refused connections, 502, 504), all retried.
    // And how long publishing to JetStream stalled: the longest an event appended under the
    // fault took to be stored in the stream.
    std::vector<PublishDelay> delays;
    for (const auto& [recorded, delay] : result.publish_delays) {
        delays.push_back({std::chrono::duration_cast<Millis>(recorded - wall_start), delay});
    }
    std::printf("\n%-20s %6s %24s %24s %8s %10s %18s\n", "fault", "count", "longest without answer",
                "recovered after undone", "503s", "no answer", "publish stalled");
    struct KindFigures {
        int count = 0;
        OutageFigures worst;  // longest and recovery: the worst; attempts: the sum
        Millis publish_stalled{0};
    };
    std::map<std::string, KindFigures> by_kind;
    for (std::size_t i = 0; i < done.size(); ++i) {
        const auto& f = done[i];
        const auto next = i + 1 < done.size() ? done[i + 1].began : Millis::max();
        const auto figures =
            outages_of_fault(work.outages, work.failed_attempts, f.began, f.ended, next);
        auto& kind = by_kind[f.planned.spec.name()];
        ++kind.count;
        kind.worst.longest = std::max(kind.worst.longest, figures.longest);
        kind.worst.recovered_after = std::max(kind.worst.recovered_after, figures.recovered_after);
        kind.worst.answered_503 += figures.answered_503;
        kind.worst.other_failures += figures.other_failures;
        kind.publish_stalled =
            std::max(kind.publish_stalled, longest_publish_delay(delays, f.began, next));
    }
    for (const auto& [name, kind] : by_kind) {
        std::printf("%-20s %6d %24s %24s %8d %10d %18s\n", name.c_str(), kind.count,
                    seconds_text(kind.worst.longest).c_str(),
                    seconds_text(kind.worst.recovered_after).c_str(), kind.worst.answered_503,
                    kind.worst.other_failures, seconds_text(kind.publish_stalled).c_str());
    }
    for (const auto& spec : *kinds) {
        if (!by_kind.contains(spec.name()))
            std::printf("%-20s %6d %24s %24s %8s %10s %18s\n", spec.name().c_str(), 0, "-", "-",
                        "-", "-", "-");
    }
    if (result.violations.empty()) {
        std::printf("\nsoak: every check passed\n");
        return 0;
    }
    std::printf("\nsoak: %zu violations\n", result.violations.size());
    for (const auto& v : result.violations) std::printf("  %s\n", v.c_str());
    return 1;
} catch (const std::exception& e) {
    std::fprintf(stderr, "ordo-soak: %s\n", e.what());
    return 1;
}
