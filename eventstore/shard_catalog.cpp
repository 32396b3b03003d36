// Reading and writing the shard map in the control database.
#include "eventstore/shard_catalog.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "eventstore/topology.hpp"
#include "platform/core/errors.hpp"

namespace ordo::eventstore {
namespace {

// "{1,0,1}" as PostgreSQL prints an integer[] (no NULLs: the column's check and the map's
// invariants leave none).
std::vector<int> parse_int_array(const std::string& text) {
    std::vector<int> values;
    if (text.size() < 2 || text.front() != '{' || text.back() != '}') {
        throw std::runtime_error("not an integer array: " + text);
    }
    std::size_t start = 1;
    while (start < text.size() - 1) {
        auto comma = text.find(',', start);
        if (comma == std::string::npos) comma = text.size() - 1;
        values.push_back(std::stoi(text.substr(start, comma - start)));
        start = comma + 1;
    }
    return values;
}

std::string int_array(const std::vector<int>& values) {
    std::string text = "{";
    for (std::size_t i = 0; i < values.size(); ++i) {
        if (i) text += ',';
        text += std::to_string(values[i]);
    }
    return text + "}";
}

}  // namespace

std::optional<ShardMap> read_shard_map(pqxx::transaction_base& txn) {
    auto row = txn.exec1("SELECT version, owners, shards FROM ordo.current_shard_map()");
    if (row[0].is_null()) return std::nullopt;
    auto owners = parse_int_array(row[1].as<std::string>());
    std::vector<ShardLocation> shards;
    for (const auto& s : nlohmann::json::parse(row[2].as<std::string>())) {
        shards.push_back({s.at("id").get<int>(), s.at("hosts").get<std::string>(),
                          s.at("database").get<std::string>()});
    }
    const auto partitions = static_cast<int>(owners.size());
    return ShardMap{row[0].as<std::int64_t>(), partitions, std::move(shards), std::move(owners)};
}

ShardMap shard_map_for(pqxx::transaction_base& txn, int partitions) {
    auto written = read_shard_map(txn);
    if (!written) return ShardMap::single(partitions > 0 ? partitions : kDefaultPartitions);
    if (partitions > 0 && written->partitions() != partitions) {
        throw PartitionCountMismatch(written->partitions(), partitions);
    }
    return std::move(*written);
}

void write_first_map(pqxx::transaction_base& txn, const ShardMap& map) {
    if (map.version() != 1) throw platform::InvalidInput("a first shard map is version 1");
    txn.exec("LOCK TABLE ordo.shard_map IN EXCLUSIVE MODE");
    if (txn.exec1("SELECT count(*) FROM ordo.shard_map")[0].as<std::int64_t>() > 0) {
        throw platform::InvalidInput(
            "this store has a shard map already; partitions change shards only by moving");
    }
    for (const auto& s : map.shards()) {
        txn.exec_params(
            "INSERT INTO ordo.shards (id, hosts, database) VALUES ($1, $2, $3) "
            "ON CONFLICT (id) DO UPDATE SET hosts = EXCLUDED.hosts, database = EXCLUDED.database",
            s.id, s.hosts, s.database);
    }
    txn.exec_params("INSERT INTO ordo.shard_map (version, owners) VALUES (1, $1::integer[])",
                    int_array(map.owners()));
}

std::optional<ShardLocation> registered_shard(pqxx::transaction_base& txn, int id) {
    // Through the function: a relay may ask, and has no grant on ordo.shards.
    auto rows = txn.exec_params(
        "SELECT hosts, database FROM ordo.registered_shard($1) WHERE hosts IS NOT NULL", id);
    if (rows.empty()) return std::nullopt;
    return ShardLocation{id, rows[0][0].as<std::string>(), rows[0][1].as<std::string>()};
}

std::vector<ShardLocation> registered_shards(pqxx::transaction_base& txn) {
    std::vector<ShardLocation> out;
    for (const auto& row : txn.exec("SELECT id, hosts, database FROM ordo.shards ORDER BY id"))
        out.push_back({row[0].as<int>(), row[1].as<std::string>(), row[2].as<std::string>()});
    return out;
}

bool new_shard(pqxx::transaction_base& txn, const ShardLocation& shard) {
    if (!read_shard_map(txn)) {
        throw platform::InvalidInput(
            "this store has no shard map: write the first one with `ordo shards init`");
    }
    for (const auto& known : registered_shards(txn)) {
        if (known.id == shard.id && known != shard) {
            throw platform::InvalidInput("shard " + std::to_string(shard.id) +
                                         " is registered already, at " + known.hosts + "/" +
                                         known.database);
        }
        if (known.id != shard.id && known.hosts == shard.hosts &&
            known.database == shard.database) {
            throw platform::InvalidInput(shard.hosts + "/" + shard.database +
                                         " is registered already, as shard " +
                                         std::to_string(known.id));
        }
        if (known == shard) return false;
    }
    return true;
}

void register_shard(pqxx::transaction_base& txn, const ShardLocation& shard) {
    txn.exec("LOCK TABLE ordo.shard_map IN EXCLUSIVE MODE");
    if (!new_shard(txn, shard)) return;
    txn.exec_params(
        "INSERT INTO ordo.shards (id, hosts, database) VALUES ($1, $2, $3) "
        "ON CONFLICT (id) DO NOTHING",
        shard.id, shard.hosts, shard.database);
}

ShardMap write_moved_map(pqxx::transaction_base& txn, int partition, int to) {
    txn.exec("LOCK TABLE ordo.shard_map IN EXCLUSIVE MODE");
    auto current = read_shard_map(txn);
    if (!current) throw platform::InvalidInput("this store has no shard map: nothing to move");
    auto owners = current->owners();
    if (partition < 0 || partition >= current->partitions()) {
        throw platform::InvalidInput("partition " + std::to_string(partition) +
                                     " is not one of 0.." +
                                     std::to_string(current->partitions() - 1));
    }
    owners[static_cast<std::size_t>(partition)] = to;
    std::vector<ShardLocation> shards;
    for (const auto& row : txn.exec("SELECT id, hosts, database FROM ordo.shards ORDER BY id")) {
        const int id = row[0].as<int>();
        if (std::find(owners.begin(), owners.end(), id) == owners.end()) continue;
        shards.push_back({id, row[1].as<std::string>(), row[2].as<std::string>()});
    }
    ShardMap moved{current->version() + 1, current->partitions(), std::move(shards),
                   std::move(owners)};
    txn.exec_params("INSERT INTO ordo.shard_map (version, owners) VALUES ($1, $2::integer[])",
                    moved.version(), int_array(moved.owners()));
    return moved;
}

std::vector<std::pair<int, std::int64_t>> foreign_partitions(pqxx::transaction_base& shard_txn,
                                                             const ShardMap& map, int shard) {
    auto rows = shard_txn.exec_params(
        "SELECT (stream_hash % $1)::int, count(*) FROM ordo.events "
        "WHERE NOT ((stream_hash % $1)::int = ANY ($2::integer[])) GROUP BY 1 ORDER BY 1",
        map.partitions(), int_array(map.partitions_of(shard)));
    std::vector<std::pair<int, std::int64_t>> foreign;
    for (const auto& row : rows) foreign.emplace_back(row[0].as<int>(), row[1].as<std::int64_t>());
    return foreign;
}

}  // namespace ordo::eventstore
