// `ordo rebuild`: an offline rebuild of one projection from the command line, with progress on
// stderr.

#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "app/subcommands.hpp"
#include "app/upcasters.hpp"
#include "eventstore/pg_shards.hpp"
#include "platform/core/errors.hpp"
#include "projections/read_models.hpp"
#include "projections/rebuild.hpp"
#include "sagas/intake.hpp"

namespace ordo::app {
namespace {

std::string format_duration(std::chrono::seconds s) {
    const auto h = s.count() / 3600, m = (s.count() / 60) % 60, sec = s.count() % 60;
    char out[32];
    if (h > 0) {
        std::snprintf(out, sizeof out, "%lldh%02lldm", static_cast<long long>(h),
                      static_cast<long long>(m));
    } else {
        std::snprintf(out, sizeof out, "%lldm%02llds", static_cast<long long>(m),
                      static_cast<long long>(sec));
    }
    return out;
}

// Progress on stderr: one line rewritten in place on a terminal; otherwise a line every
// few seconds, so a log file does not fill with them.
class ProgressLine {
   public:
    explicit ProgressLine(std::string projection)
        : projection_{std::move(projection)}, tty_{::isatty(STDERR_FILENO) == 1} {}

    void operator()(const projections::RebuildProgress& p) {
        const auto now = std::chrono::steady_clock::now();
        if (!tty_ && !p.finished && p.done > 0 && now - last_ < std::chrono::seconds(5)) return;
        last_ = now;
        char line[256];
        const double percent =
            p.total > 0 ? 100.0 * static_cast<double>(p.done) / static_cast<double>(p.total) : 100;
        const std::string left =
            p.finished ? "done"
                       : "time left " + (p.remaining ? format_duration(*p.remaining) : "?");
        std::snprintf(line, sizeof line,
                      "rebuild %s: %lld / %lld events (%.1f%%), %.0f events/s, %s",
                      projection_.c_str(), static_cast<long long>(p.done),
                      static_cast<long long>(p.total), percent, p.events_per_second, left.c_str());
        if (tty_) {
            std::cerr << "\r\033[K" << line << (p.finished ? "\n" : "") << std::flush;
        } else {
            std::cerr << line << "\n" << std::flush;
        }
    }

   private:
    std::string projection_;
    bool tty_;
    std::chrono::steady_clock::time_point last_{};
};

void print_plan(const projections::RebuildPlan& plan, const projections::RebuildOptions& o) {
    std::cout << "projection:      " << plan.projection << "\n"
              << "tables:          ";
    for (std::size_t i = 0; i < plan.tables.size(); ++i) {
        std::cout << (i ? ", " : "") << plan.tables[i];
    }
    std::cout << "\nshadow schema:   " << plan.shadow_schema
              << (plan.leftover_shadow ? " (left by an interrupted rebuild; dropped first)" : "");
    if (plan.shard_horizons.empty()) {
        std::cout << "\nhorizon:         transaction " << plan.horizon.transaction_id
                  << ", position " << plan.horizon.position;
    }
    for (const auto& [shard, horizon] : plan.shard_horizons) {
        std::cout << "\nhorizon, shard " << shard << ": transaction " << horizon.transaction_id
                  << ", position " << horizon.position;
    }
    std::cout << "\nevents to replay: " << plan.events << " in batches of " << o.batch
              << "\npartitions:      " << o.partitions
              << " checkpoints set to the horizon at the swap\n"
              << "checkpoints now: ";
    if (plan.checkpoints.empty()) std::cout << "none";
    for (const auto& c : plan.checkpoints) {
        std::cout << "\n  partition " << c.partition << ": transaction " << c.at.transaction_id
                  << ", position " << c.at.position;
    }
    if (!plan.checkpoints.empty() && static_cast<int>(plan.checkpoints.size()) != o.partitions) {
        std::cout << "\nnote: the checkpoints cover " << plan.checkpoints.size()
                  << " partitions, not " << o.partitions
                  << "; a rebuild refuses unless given the runtime's --partitions (or --force)";
    }
    std::cout << "\nlive owners:     " << (plan.live_owners.empty() ? "none" : "");
    for (std::size_t i = 0; i < plan.live_owners.size(); ++i) {
        std::cout << (i ? ", " : "") << plan.live_owners[i];
    }
    std::cout << "\n";
}

}  // namespace

int run_rebuild(const RebuildCommandOptions& given, const platform::Logger& log) {
    auto options = given;
    auto map = eventstore::ShardMap::single(eventstore::kDefaultPartitions);  // the store's, below
    if (auto rc =
            agree_on_partitions(nullptr, options.rebuild.database_url, options.rebuild.partitions,
                                PartitionRole::compare, log, &map)) {
        return *rc;
    }
    ProgressLine progress{options.projection};
    const auto upcasters = event_upcasters();
    auto rebuild_options = options.rebuild;
    rebuild_options.upcasters = &upcasters;
    // Over a sharded store the events come from every shard, and the saga view folds the
    // process streams there.
    std::unique_ptr<eventstore::PgShards> shards;
    if (map.version() > 0) {
        rebuild_options.shards = map;
        shards = std::make_unique<eventstore::PgShards>(
            map,
            eventstore::PgShardsOptions{.url = options.rebuild.database_url,
                                        .pool = {.size = 2, .name = "rebuild"},
                                        .upcasters = &upcasters},
            log);
    }
    platform::SystemClock clock;
    try {
        auto report = projections::rebuild(
            options.projection,
            [&upcasters, &shards](const std::string& schema) {
                auto models = projections::read_models(schema);
                models.push_back(sagas::saga_view_projection(schema, &upcasters, shards.get()));
                return models;
            },
            rebuild_options, clock, log,
            [&progress](const projections::RebuildProgress& p) { progress(p); });
        if (options.rebuild.dry_run) {
            print_plan(report.plan, options.rebuild);
            std::cout << "dry run: nothing was changed\n";
            return 0;
        }
        const double seconds = static_cast<double>(report.replay_time.count()) / 1000.0;
        log.info("rebuild swapped in",
                 {{"projection", report.plan.projection},
                  {"events", report.applied},
                  {"bulk", report.bulk},
                  {"replay_seconds", seconds},
                  {"total_seconds", static_cast<double>(report.total_time.count()) / 1000.0},
                  {"events_per_second",
                   seconds > 0 ? static_cast<double>(report.applied) / seconds : 0.0},
                  {"checkpoint_transaction", report.plan.horizon.transaction_id},
                  {"checkpoint_position", report.plan.horizon.position},
                  {"shards", report.plan.shard_horizons.size()}});
        return 0;
    } catch (const projections::RebuildRefused& e) {
        log.error(e.what());
        return 4;
    } catch (const platform::InvalidInput& e) {
        log.error(e.what());
        return 2;
    } catch (const std::exception& e) {
        log.error("rebuild failed; the live model is unchanged",
                  {{"projection", options.projection}, {"error", e.what()}});
        return 1;
    }
}

}  // namespace ordo::app
