// The lag count of projection partitions on ordo.events.

#include "eventstore/lag.hpp"

#include <string>
#include <type_traits>

#include <pqxx/pqxx>

namespace ordo::eventstore {
namespace {

template <typename T>
std::string pg_array(const std::vector<T>& items) {
    std::string out = "{";
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (i) out += ",";
        if constexpr (std::is_same_v<T, std::string>) {
            out += items[i];
        } else {
            out += std::to_string(items[i]);
        }
    }
    return out + "}";
}

}  // namespace

namespace {

// The lag of each checkpoint row `rows` gives (a query of partition, transaction_id and
// global_position); $1 the partition count, $2 the categories, $3 the limit. One walk in
// commit order from the earliest checkpoint, taking each event of an asked partition past
// that partition's own checkpoint, at most $3 of them: a partition-by-partition count walked
// the whole backlog once per partition (the filter on the partition uses no index), which
// under a burst made this statement a quarter of the database's statement time. Only events
// behind count towards the limit, so below it every count is exact.
std::string lag_sql(const std::string& rows) {
    return "WITH c AS MATERIALIZED (" + rows +
           "), x AS (SELECT c.partition, e.recorded_at FROM ordo.events e JOIN c ON c.partition "
           "= (e.stream_hash % $1)::integer AND (e.transaction_id, e.global_position) > "
           "(c.transaction_id, c.global_position) WHERE (e.transaction_id, e.global_position) > "
           "(SELECT c.transaction_id, c.global_position FROM c ORDER BY c.transaction_id, "
           "c.global_position LIMIT 1) AND e.transaction_id < "
           "pg_snapshot_xmin(pg_current_snapshot()) AND (cardinality($2::text[]) = 0 OR "
           "e.category = ANY($2::text[])) ORDER BY e.transaction_id, e.global_position LIMIT $3) "
           "SELECT c.partition, count(x.partition), coalesce(extract(epoch FROM now() - "
           "min(x.recorded_at)), 0)::float8 FROM c LEFT JOIN x ON x.partition = c.partition "
           "GROUP BY c.partition";
}

std::vector<PartitionLag> lags(const pqxx::result& rows) {
    std::vector<PartitionLag> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
        out.push_back({row[0].as<int>(), row[1].as<std::int64_t>(), row[2].as<double>()});
    }
    return out;
}

}  // namespace

std::vector<PartitionLag> partition_lag(pqxx::transaction_base& txn, const std::string& projection,
                                        int partition_count,
                                        const std::vector<std::string>& categories,
                                        const std::vector<int>& partitions,
                                        std::int64_t max_count) {
    return lags(txn.exec_params(lag_sql("SELECT partition, transaction_id, global_position FROM "
                                        "ordo.projection_checkpoints WHERE projection = $4 AND "
                                        "partition = ANY($5::int[])"),
                                partition_count, pg_array(categories), max_count, projection,
                                pg_array(partitions)));
}

std::vector<PartitionLag> partition_lag_after(pqxx::transaction_base& txn, int partition_count,
                                              const std::vector<std::string>& categories,
                                              const std::vector<std::pair<int, Checkpoint>>& from,
                                              std::int64_t max_count) {
    if (from.empty()) return {};
    std::vector<int> partitions;
    std::vector<std::string> transactions;
    std::vector<std::int64_t> positions;
    for (const auto& [partition, checkpoint] : from) {
        partitions.push_back(partition);
        transactions.push_back(std::to_string(checkpoint.transaction_id));
        positions.push_back(checkpoint.position);
    }
    return lags(txn.exec_params(lag_sql("SELECT * FROM unnest($4::int[], $5::text[]::xid8[], "
                                        "$6::bigint[]) AS u(partition, transaction_id, "
                                        "global_position)"),
                                partition_count, pg_array(categories), max_count,
                                pg_array(partitions), pg_array(transactions), pg_array(positions)));
}

}  // namespace ordo::eventstore
