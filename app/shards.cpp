// `ordo shards`: writing a store's first shard map, and showing the map with each shard's size
// and relay leader.

#include <iostream>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "app/subcommands.hpp"
#include "eventstore/shard_catalog.hpp"
#include "eventstore/topology.hpp"
#include "platform/core/errors.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::app {
namespace {

pqxx::connection connect(const std::string& url) {
    return pqxx::connection{platform::pg::connection_url(url, "ordo-shards")};
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

std::string partition_list(const std::vector<int>& partitions) {
    std::string text;
    for (int p : partitions) text += (text.empty() ? "" : ",") + std::to_string(p);
    return text;
}

}  // namespace

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
        if (options.if_absent) {
            auto conn = connect(options.database_url);
            pqxx::read_transaction txn{conn};
            if (auto written = eventstore::read_shard_map(txn)) {
                if (written->shards() == map.shards() && written->owners() == map.owners()) {
                    log.info("the shard map is written already",
                             {{"version", written->version()}, {"shards", map.shards().size()}});
                    return 0;
                }
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
    } catch (const eventstore::PartitionCountMismatch& e) {
        log.error("refusing to write the map: wrong partition count", {{"error", e.what()}});
        return 2;
    } catch (const platform::InvalidInput& e) {
        log.error("refusing to write the map", {{"error", e.what()}});
        return 2;
    } catch (const std::exception& e) {
        log.error("could not write the shard map", {{"error", e.what()}});
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
    nlohmann::json out{{"version", map.version()},
                       {"partitions", map.partitions()},
                       {"shards", nlohmann::json::array()}};
    int rc = 0;
    for (const auto& shard : map.shards()) {
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
        std::cout << "shard " << row["id"].get<int>() << "  " << row["location"].get<std::string>()
                  << "\n  partitions " << partition_list(row["partitions"].get<std::vector<int>>())
                  << "\n";
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
