// `ordo shards`: writing a store's first shard map, adding a shard, moving partitions
// between shards, and showing the map with each shard's size and relay leader.

#include <algorithm>
#include <csignal>
#include <cstdlib>
#include <iostream>
#include <optional>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "app/subcommands.hpp"
#include "eventstore/partition_move.hpp"
#include "eventstore/shard_catalog.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/errors.hpp"
#include "platform/pg/advisory_locks.hpp"
#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"

namespace ordo::app {
namespace {

// Never reconnected by itself: a move holds its advisory lock on the control session.
platform::pg::Session connect(const std::string& url) {
    return platform::pg::Session{url, "ordo-shards"};
}

// "0=db0:5432/ordo" -> shard 0 at db0:5432, database ordo.
eventstore::ShardLocation parse_shard_option(const std::string& text) {
    auto equals = text.find('=');
    int id = -1;
    try {
        if (equals != std::string::npos && equals > 0 && equals <= 3) {
            id = std::stoi(text.substr(0, equals));
        }
    } catch (const std::exception&) {
    }
    if (id < 0 || std::to_string(id) != text.substr(0, equals)) {
        throw platform::InvalidInput("--shard is <id>=<host[:port],...>/<database>, not '" + text +
                                     "'");
    }
    return eventstore::parse_location(id, text.substr(equals + 1));
}

// Fault injection for the move's tests: ORDO_SHARDS_MOVE_KILL_AFTER=<point> kills this process
// with SIGKILL right after that point's commit, as a crash there would.
void crash_point(std::string_view point) {
    if (const char* at = std::getenv("ORDO_SHARDS_MOVE_KILL_AFTER"); at && point == at) {
        std::raise(SIGKILL);
    }
}

// Each shard fences the partitions the map gives to another (migration 0017), so that a
// service routing by an old map cannot write where a partition no longer is.
void fence_foreign(pqxx::transaction_base& shard_txn, const eventstore::ShardMap& map, int shard) {
    for (int p = 0; p < map.partitions(); ++p) {
        if (map.shard_of_partition(p) != shard) {
            eventstore::fence_partition(shard_txn, map.partitions(), p);
        }
    }
}

// Whether `asked` (the shards `shards init` is given) names the store `written` is the map
// of: the same partition count, every shard of the map among them, and any other one a shard
// this store registered that moves have emptied since (it is no longer in the map).
bool same_store(pqxx::transaction_base& txn, const eventstore::ShardMap& written,
                const eventstore::ShardMap& asked) {
    if (written.partitions() != asked.partitions()) return false;
    const auto& named = written.shards();
    for (const auto& shard : named) {
        if (std::find(asked.shards().begin(), asked.shards().end(), shard) ==
            asked.shards().end()) {
            return false;
        }
    }
    for (const auto& shard : asked.shards()) {
        if (std::find(named.begin(), named.end(), shard) != named.end()) continue;
        if (eventstore::registered_shard(txn, shard.id) != shard) return false;
    }
    return true;
}

// In a catch block of `shards init` or `add`: logs what is being handled and gives the exit
// status, 2 for a refusal (bad input, another partition count; nothing was changed), 1 for a
// failure (run it again).
int refused_or_failed(const platform::Logger& log, const std::string& refusing,
                      const std::string& failing) {
    try {
        throw;
    } catch (const eventstore::PartitionCountMismatch& e) {
        log.error(refusing + ": wrong partition count", {{"error", e.what()}});
        return 2;
    } catch (const platform::InvalidInput& e) {
        log.error(refusing, {{"error", e.what()}});
        return 2;
    } catch (const std::exception& e) {
        log.error(failing, {{"error", e.what()}});
        return 1;
    }
}

std::string partition_list(const std::vector<int>& partitions) {
    std::string text;
    for (int p : partitions) text += (text.empty() ? "" : ",") + std::to_string(p);
    return text;
}

}  // namespace

std::vector<int> mapped_shards(const std::string& database_url) {
    auto conn = connect(database_url);
    pqxx::read_transaction txn{conn};
    std::vector<int> ids;
    if (auto map = eventstore::read_shard_map(txn)) {
        for (const auto& shard : map->shards()) ids.push_back(shard.id);
    } else {
        ids.push_back(0);
    }
    return ids;
}

int run_shards_init(const ShardsOptions& options, const platform::Logger& log) {
    try {
        std::vector<eventstore::ShardLocation> locations;
        for (const auto& text : options.shards) locations.push_back(parse_shard_option(text));
        auto map = eventstore::ShardMap::spread(options.partitions, std::move(locations));
        // Every shard migrated (again, harmlessly, when the map is written already: a new
        // release may bring a migration), set up for the map's partition count, and holding
        // no stream of a partition it will not own; then the map, in one transaction of the
        // control database.
        for (const auto& shard : map.shards()) {
            if (int rc = run_migrate(eventstore::shard_url(options.database_url, shard), log);
                rc != 0) {
                return rc;
            }
        }
        {
            auto conn = connect(options.database_url);
            pqxx::read_transaction txn{conn};
            // Partitions may have moved since: the same shards are the same store. A map that
            // is written otherwise is refused here, before any shard is touched.
            if (auto written = eventstore::read_shard_map(txn)) {
                if (!options.if_absent) {
                    throw platform::InvalidInput("this store has a shard map already (version " +
                                                 std::to_string(written->version()) +
                                                 "); partitions change shards only by moving");
                }
                if (!same_store(txn, *written, map)) {
                    throw platform::InvalidInput(
                        "this store's shard map (version " + std::to_string(written->version()) +
                        ") names other shards or another partition count than these; it "
                        "changes by `ordo shards add` and `ordo shards move`");
                }
                for (const auto& shard : map.shards()) {
                    auto shard_conn = connect(eventstore::shard_url(options.database_url, shard));
                    pqxx::work shard_txn{shard_conn};
                    fence_foreign(shard_txn, *written, shard.id);
                    shard_txn.commit();
                }
                log.info("the shard map is written already",
                         {{"version", written->version()}, {"shards", map.shards().size()}});
                return 0;
            }
        }
        for (const auto& shard : map.shards()) {
            const auto url = eventstore::shard_url(options.database_url, shard);
            auto conn = connect(url);
            pqxx::work txn{conn};
            eventstore::claim_partition_count(txn, map.partitions());
            auto foreign = eventstore::foreign_partitions(txn, map, shard.id);
            if (!foreign.empty()) {
                std::string held;
                for (const auto& [partition, events] : foreign) {
                    held += (held.empty() ? "" : ", ") + std::to_string(events) +
                            " events of partition " + std::to_string(partition);
                }
                log.error(
                    "refusing to write the map: a shard holds streams the map gives to "
                    "another",
                    {{"shard", shard.id}, {"location", to_string(shard)}, {"holds", held}});
                return 2;
            }
            fence_foreign(txn, map, shard.id);
            txn.commit();
        }
        auto conn = connect(options.database_url);
        pqxx::work txn{conn};
        eventstore::claim_partition_count(txn, map.partitions());
        eventstore::write_first_map(txn, map);
        txn.commit();
        log.info("shard map written", {{"version", map.version()},
                                       {"partitions", map.partitions()},
                                       {"shards", map.shards().size()}});
        for (const auto& shard : map.shards()) {
            std::cout << "shard " << shard.id << "  " << to_string(shard) << "  partitions "
                      << partition_list(map.partitions_of(shard.id)) << "\n";
        }
        return 0;
    } catch (...) {
        return refused_or_failed(log, "refusing to write the map", "could not write the shard map");
    }
}

int run_shards_add(const ShardsOptions& options, const platform::Logger& log) {
    try {
        std::optional<eventstore::ShardMap> map;
        {
            auto conn = connect(options.database_url);
            pqxx::read_transaction txn{conn};
            map = eventstore::read_shard_map(txn);
        }
        if (!map) {
            throw platform::InvalidInput(
                "this store has no shard map: write the first one with `ordo shards init`");
        }
        for (const auto& text : options.shards) {
            const auto shard = parse_shard_option(text);
            // Nothing is written before the control database says the shard may be added: an
            // id or a location registered already is refused, and whatever the target is, it
            // is left as it was.
            bool added_before = false;
            {
                auto conn = connect(options.database_url);
                pqxx::read_transaction txn{conn};
                added_before = !eventstore::new_shard(txn, shard);
            }
            // Migrated, also when added before (a new release may bring a migration).
            const auto url = eventstore::shard_url(options.database_url, shard);
            if (int rc = run_migrate(url, log); rc != 0) return rc;
            if (added_before) {
                log.info("the shard is registered already",
                         {{"shard", shard.id}, {"location", to_string(shard)}});
                std::cout << "shard " << shard.id << "  " << to_string(shard)
                          << "  registered already\n";
                continue;
            }
            // Then the new shard: set up for the store's partition count, holding no event,
            // and fenced against every partition (it owns none until a move gives it one).
            // A database that fences some partitions but not all is another store's shard.
            // Registered last, so that a shard the control database names is always ready;
            // run again after a failure, every step finds its work done.
            {
                auto conn = connect(url);
                pqxx::work txn{conn};
                eventstore::claim_partition_count(txn, map->partitions());
                const auto held =
                    txn.exec1("SELECT count(*) FROM ordo.events")[0].as<std::int64_t>();
                if (held != 0) {
                    throw platform::InvalidInput(
                        to_string(shard) + " holds " + std::to_string(held) +
                        " events already: a shard is added empty, and partitions move to it");
                }
                const auto fenced =
                    txn.exec1("SELECT count(*) FROM ordo.partition_fences")[0].as<int>();
                if (fenced != 0 && fenced != map->partitions()) {
                    throw platform::InvalidInput(to_string(shard) + " fences " +
                                                 std::to_string(fenced) + " of " +
                                                 std::to_string(map->partitions()) +
                                                 " partitions: it is a shard of a store already");
                }
                fence_foreign(txn, *map, shard.id);
                txn.commit();
            }
            auto conn = connect(options.database_url);
            pqxx::work txn{conn};
            eventstore::register_shard(txn, shard);
            txn.commit();
            log.info("shard added", {{"shard", shard.id}, {"location", to_string(shard)}});
            std::cout << "shard " << shard.id << "  " << to_string(shard)
                      << "  no partitions yet: start its relay (ordo serve relay --shard "
                      << shard.id << "), then move partitions to it (ordo shards move)\n";
        }
        return 0;
    } catch (...) {
        return refused_or_failed(log, "refusing to add the shard", "could not add the shard");
    }
}

namespace {

// A move starts only from a shard whose command log records the stream of every key: one
// written before migration 0017 records none, so the move would leave it behind, and a replay
// of its request after the move would run the request again. Throws InvalidInput saying
// until when (the newest such row's time, plus the command service's key retention).
void refuse_unrouted_keys(pqxx::transaction_base& control, const ShardsOptions& options,
                          int shard) {
    eventstore::UnroutedKeys unrouted;
    try {
        auto source = connect(eventstore::shard_url(options.database_url,
                                                    *eventstore::registered_shard(control, shard)));
        unrouted = eventstore::unrouted_command_keys(source);
    } catch (const pqxx::failure& e) {
        throw platform::Unavailable(
            "cannot read shard " + std::to_string(shard) +
            "'s command log before the move, which has not begun: " + e.what());
    }
    if (unrouted.count == 0) return;
    throw platform::InvalidInput(
        "shard " + std::to_string(shard) + " keeps " + std::to_string(unrouted.count) +
        (unrouted.count == 1 ? " idempotency key" : " idempotency keys") +
        " written by a release before migration 0017, which record no stream: a move "
        "cannot tell which are this partition's and would leave them behind, so that a "
        "replay of their requests after it would run them again. The command service "
        "deletes them 48 h after the newest, written at " +
        unrouted.newest + "; move then, or now with --ignore-unrouted-keys");
}

}  // namespace

int run_shards_move(const ShardsOptions& options, const platform::Logger& log) {
    using eventstore::MoveStep;
    const int partition = options.partition;
    try {
        auto control = connect(options.database_url);
        // One `shards move` of a partition at a time, for as long as this session lasts.
        {
            pqxx::nontransaction txn{control};
            if (!txn.exec_params1("SELECT pg_try_advisory_lock($1::int, $2::int)",
                                  platform::pg::advisory_locks::kPartitionMove, partition)[0]
                     .as<bool>()) {
                log.error("another `ordo shards move` of this partition is running",
                          {{"partition", partition}});
                return 2;
            }
        }
        std::optional<eventstore::PartitionMove> move;
        int partitions = 0;
        eventstore::ShardLocation from, to;
        {
            pqxx::work txn{control};
            auto map = eventstore::read_shard_map(txn);
            if (!map) throw platform::InvalidInput("this store has no shard map: nothing to move");
            partitions = map->partitions();
            if (partition >= partitions) {
                throw platform::InvalidInput("partition " + std::to_string(partition) +
                                             " is not one of 0.." + std::to_string(partitions - 1));
            }
            move = eventstore::lock_open_move(txn, partition);
            if (options.rollback && !move) {
                log.info("the partition has no unfinished move: nothing to roll back",
                         {{"partition", partition}});
                return 0;
            }
            if (move && options.to >= 0 && options.to != move->to) {
                throw platform::InvalidInput("partition " + std::to_string(partition) +
                                             " is being moved to shard " +
                                             std::to_string(move->to) +
                                             ": run the move to that shard again, or roll it "
                                             "back with --rollback");
            }
            if (!move) {
                if (options.to < 0) throw platform::InvalidInput("--to names the shard to move to");
                const int owner = map->shard_of_partition(partition);
                if (owner == options.to) {
                    log.info("the partition is on that shard already",
                             {{"partition", partition}, {"shard", owner}});
                    return 0;
                }
                if (!eventstore::registered_shard(txn, options.to)) {
                    throw platform::InvalidInput("shard " + std::to_string(options.to) +
                                                 " is not registered in the control database");
                }
                if (!options.ignore_unrouted_keys) refuse_unrouted_keys(txn, options, owner);
                move = eventstore::begin_move(txn, partition, owner, options.to);
            }
            from = *eventstore::registered_shard(txn, move->from);
            to = *eventstore::registered_shard(txn, move->to);
            txn.commit();
        }
        auto source = connect(eventstore::shard_url(options.database_url, from));
        auto destination = connect(eventstore::shard_url(options.database_url, to));
        auto advance = [&](MoveStep step) {
            pqxx::work txn{control};
            eventstore::set_move_step(txn, move->id, step);
            txn.commit();
            move->step = step;
            log.info("partition move", {{"partition", partition},
                                        {"from", move->from},
                                        {"to", move->to},
                                        {"step", std::string{to_string(step)}}});
        };
        auto on_shard = [&](pqxx::connection& conn, const auto& work) {
            pqxx::work txn{conn};
            work(txn);
            txn.commit();
        };

        if (options.rollback) {
            if (move->step == MoveStep::removing) {
                throw platform::InvalidInput("the map gives partition " +
                                             std::to_string(partition) + " to shard " +
                                             std::to_string(move->to) +
                                             " already: run the move again to finish it, "
                                             "then move it back with --to " +
                                             std::to_string(move->from));
            }
            // The destination never owned it: its rows there are this move's copies.
            eventstore::remove_partition(destination, partitions, partition);
            crash_point("rollback-removed");
            on_shard(source, [&](auto& txn) { eventstore::unfence_partition(txn, partition); });
            advance(MoveStep::rolled_back);
            std::cout << "partition " << partition << " stays on shard " << move->from
                      << ": its move was rolled back\n";
            return 0;
        }
        if (move->step == MoveStep::fencing) {
            // The bulk first, while the partition still takes writes: the pause below is for
            // what comes meanwhile.
            on_shard(destination,
                     [&](auto& txn) { eventstore::fence_partition(txn, partitions, partition); });
            const auto precopied = eventstore::precopy_partition(
                source, destination, partitions, partition, move->from, options.batch,
                [] { crash_point("precopy-batch"); });
            log.info("partition move: copied before the pause",
                     {{"partition", partition}, {"events", precopied}});
            on_shard(source,
                     [&](auto& txn) { eventstore::fence_partition(txn, partitions, partition); });
            crash_point("fenced");
            try {
                eventstore::wait_for_older_transactions(source,
                                                        std::chrono::seconds(options.wait_seconds));
            } catch (const platform::Unavailable&) {
                // The partition is not left paused for as long as that transaction lasts, and
                // the destination keeps none of the copies.
                on_shard(source, [&](auto& txn) { eventstore::unfence_partition(txn, partition); });
                eventstore::remove_partition(destination, partitions, partition);
                advance(MoveStep::rolled_back);
                throw;
            }
            advance(MoveStep::copying);
            crash_point("drained");
        }
        if (move->step == MoveStep::copying) {
            // Fenced at the step before; again for a move that an older release left here.
            on_shard(destination,
                     [&](auto& txn) { eventstore::fence_partition(txn, partitions, partition); });
            eventstore::copy_partition(source, destination, partitions, partition, move->from,
                                       options.batch, [] { crash_point("copy-batch"); });
            advance(MoveStep::flipping);
            crash_point("copied");
        }
        if (move->step == MoveStep::flipping) {
            eventstore::wait_for_relay(source, partitions, partition, move->from,
                                       std::chrono::seconds(options.wait_seconds));
            const auto at_source = eventstore::digest_partition(source, partitions, partition);
            const auto at_destination =
                eventstore::digest_partition(destination, partitions, partition);
            if (!(at_source == at_destination)) {
                // Which events differ, when they can be listed; the refusal stands either way.
                nlohmann::json differing = {{"only_at_source", nullptr},
                                            {"only_at_destination", nullptr}};
                try {
                    const auto one_sided =
                        eventstore::one_sided_events(source, destination, partitions, partition);
                    differing = {{"only_at_source", one_sided.source_only},
                                 {"only_at_destination", one_sided.destination_only},
                                 {"lists_cut_short", one_sided.cut_short}};
                } catch (const std::exception& e) {
                    differing["listing_failed"] = e.what();
                }
                log.error(
                    "the copy differs from the original: the map is unchanged; roll the "
                    "move back with --rollback",
                    {{"partition", partition},
                     {"source_events", at_source.events},
                     {"destination_events", at_destination.events},
                     {"source_digest", at_source.digest},
                     {"destination_digest", at_destination.digest},
                     {"differing", differing}});
                return 1;
            }
            // The flip waits for the projectors' checkpoint rows and, through the map's lock,
            // for their transactions that make a new row (ordo.partition_owner): a moment
            // each. One that locks both the other way round is a deadlock PostgreSQL breaks
            // by ending one of the two; if that is the flip, it is run again.
            std::optional<eventstore::ShardMap> moved;
            for (int attempt = 1; !moved; ++attempt) {
                try {
                    pqxx::work txn{control};
                    txn.exec0("SET LOCAL lock_timeout = '10s'");
                    eventstore::lock_open_move(txn, partition);
                    // A rebuild running now would set the partition's checkpoints to the old
                    // shard's horizon after the flip (its keys are the one-bigint advisory
                    // locks below 2^32: advisory_locks.hpp).
                    if (txn.exec1("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                                  "AND objsubid = 1 AND classid = 0 AND database = (SELECT oid "
                                  "FROM pg_database WHERE datname = current_database())")[0]
                            .as<std::int64_t>() > 0) {
                        throw platform::Unavailable(
                            "a read model is being rebuilt (ordo rebuild): run the move again "
                            "when it has finished");
                    }
                    eventstore::rebase_partition(txn, source, destination, partitions, *move);
                    auto written = eventstore::write_moved_map(txn, partition, move->to);
                    eventstore::record_verification(txn, move->id, at_source.events,
                                                    at_source.digest);
                    eventstore::set_move_step(txn, move->id, MoveStep::removing);
                    txn.commit();
                    moved = std::move(written);
                } catch (const pqxx::sql_error& e) {
                    const bool lost = e.sqlstate() == "40P01" || e.sqlstate() == "55P03";
                    if (!lost) throw;
                    if (attempt >= 5) {
                        throw platform::Unavailable(
                            "the flip could not lock the partition's checkpoints (" +
                            std::string{e.what()} + "): run the move again");
                    }
                    log.warn("partition move: the flip met a lock; trying again",
                             {{"partition", partition}, {"error", e.what()}});
                }
            }
            move->step = MoveStep::removing;
            log.info("partition move: the map gives the partition to its new shard",
                     {{"partition", partition},
                      {"map_version", moved->version()},
                      {"events", at_source.events}});
            crash_point("flipped");
        }
        if (move->step == MoveStep::removing) {
            on_shard(destination,
                     [&](auto& txn) { eventstore::unfence_partition(txn, partition); });
            crash_point("unfenced");
            eventstore::remove_partition(source, partitions, partition);
            crash_point("removed");
            advance(MoveStep::done);
        }
        std::cout << "partition " << partition << " moved from shard " << move->from << " to shard "
                  << move->to << "\n";
        return 0;
    } catch (const platform::InvalidInput& e) {
        log.error("refusing to move the partition",
                  {{"partition", partition}, {"error", e.what()}});
        return 2;
    } catch (const std::exception& e) {
        log.error(
            "the partition move stopped; run it again to go on (or --rollback before "
            "its map flips)",
            {{"partition", partition}, {"error", e.what()}});
        return 1;
    }
}

int refuse_other_shard_count(const std::string& database_url, int shards,
                             const platform::Logger& log) {
    try {
        auto conn = connect(database_url);
        pqxx::read_transaction txn{conn};
        auto written = eventstore::read_shard_map(txn);
        const int count = written ? static_cast<int>(written->shards().size()) : 1;
        if (count == shards) return 0;
        log.error(
            "the store's shard map names another number of shards than asked for: run "
            "with that many, or start afresh",
            {{"written", count}, {"asked", shards}});
        return 2;
    } catch (const std::exception& e) {
        log.error("cannot read the shard map", {{"error", e.what()}});
        return 1;
    }
}

int run_shards_list(const ShardsOptions& options, const platform::Logger& log) {
    std::optional<eventstore::ShardMap> written;
    try {
        auto conn = connect(options.database_url);
        pqxx::read_transaction txn{conn};
        written = eventstore::read_shard_map(txn);
    } catch (const std::exception& e) {
        log.error("cannot read the shard map", {{"error", e.what()}});
        return 1;
    }
    const auto map = written ? *written : eventstore::ShardMap::single(options.partitions);
    // Every registered shard: those of the map, and any that own no partition (added, or
    // emptied by moves).
    auto shards = map.shards();
    if (written) {
        try {
            auto conn = connect(options.database_url);
            pqxx::read_transaction txn{conn};
            shards = eventstore::registered_shards(txn);
        } catch (const std::exception& e) {
            log.error("cannot read the registered shards", {{"error", e.what()}});
            return 1;
        }
    }
    nlohmann::json out{{"version", map.version()},
                       {"partitions", map.partitions()},
                       {"shards", nlohmann::json::array()}};
    int rc = 0;
    for (const auto& shard : shards) {
        nlohmann::json row{{"id", shard.id},
                           {"location", map.version() ? to_string(shard) : "(this database)"},
                           {"partitions", map.partitions_of(shard.id)}};
        try {
            auto conn = connect(eventstore::shard_url(options.database_url, shard));
            pqxx::read_transaction txn{conn};
            auto size = txn.exec1(
                "SELECT pg_database_size(current_database()), "
                "       greatest(c.reltuples, 0)::bigint FROM pg_class c "
                " WHERE c.oid = 'ordo.events'::regclass");
            row["bytes"] = size[0].as<std::int64_t>();
            row["events_estimate"] = size[1].as<std::int64_t>();
            auto relay = txn.exec_params(
                "SELECT leader, extract(epoch FROM now() - seen_at)::float8 "
                "  FROM ordo.relay_checkpoint WHERE shard = $1",
                shard.id);
            if (!relay.empty() && !relay[0][0].is_null()) {
                row["relay_leader"] = relay[0][0].as<std::string>();
                row["relay_seen_seconds_ago"] = relay[0][1].as<double>();
            } else {
                row["relay_leader"] = nullptr;
            }
        } catch (const std::exception& e) {
            row["unreachable"] = e.what();
            rc = 1;
        }
        out["shards"].push_back(std::move(row));
    }
    if (options.json) {
        std::cout << out.dump() << "\n";
        return rc;
    }
    std::cout << "shard map version " << map.version() << ", " << map.partitions() << " partitions"
              << (map.version() ? "" : " (no map written: one shard)") << "\n";
    for (const auto& row : out["shards"]) {
        const auto owned = row["partitions"].get<std::vector<int>>();
        std::cout << "shard " << row["id"].get<int>() << "  " << row["location"].get<std::string>()
                  << "\n  partitions " << (owned.empty() ? "none" : partition_list(owned)) << "\n";
        if (row.contains("unreachable")) {
            std::cout << "  unreachable: " << row["unreachable"].get<std::string>() << "\n";
            continue;
        }
        std::cout << "  size " << row["bytes"].get<std::int64_t>() / (1024 * 1024) << " MiB, about "
                  << row["events_estimate"].get<std::int64_t>() << " events\n";
        if (row["relay_leader"].is_null()) {
            std::cout << "  relay: no leader has reported\n";
        } else {
            std::cout << "  relay leader " << row["relay_leader"].get<std::string>()
                      << ", last seen "
                      << static_cast<int>(row["relay_seen_seconds_ago"].get<double>())
                      << " s ago\n";
        }
    }
    return rc;
}

}  // namespace ordo::app
