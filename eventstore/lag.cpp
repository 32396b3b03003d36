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

std::vector<PartitionLag> partition_lag(pqxx::transaction_base& txn, const std::string& projection,
                                        int partition_count,
                                        const std::vector<std::string>& categories,
                                        const std::vector<int>& partitions,
                                        std::int64_t max_count) {
    auto rows = txn.exec_params(
        "SELECT c.partition, l.n, l.oldest FROM ordo.projection_checkpoints c "
        "CROSS JOIN LATERAL (SELECT count(*) AS n, coalesce(extract(epoch FROM "
        "now() - min(x.recorded_at)), 0)::float8 AS oldest FROM (SELECT "
        "e.recorded_at FROM ordo.events e WHERE (e.transaction_id, "
        "e.global_position) > (c.transaction_id, c.global_position) AND "
        "e.transaction_id < pg_snapshot_xmin(pg_current_snapshot()) AND "
        "e.stream_hash % $2 = c.partition AND (cardinality($3::text[]) = 0 OR "
        "e.category = ANY($3::text[])) ORDER BY e.transaction_id, "
        "e.global_position LIMIT $5) x) l "
        "WHERE c.projection = $1 AND c.partition = ANY($4::int[])",
        projection, partition_count, pg_array(categories), pg_array(partitions), max_count);
    std::vector<PartitionLag> out;
    out.reserve(rows.size());
    for (const auto& row : rows) {
        out.push_back({row[0].as<int>(), row[1].as<std::int64_t>(), row[2].as<double>()});
    }
    return out;
}

}  // namespace ordo::eventstore
