// One value read by SQL on a fresh connection, and whether every stored event's transaction
// is older than the oldest one still running in the cluster.
#include "tests/support/conditions.hpp"

#include <pqxx/pqxx>

namespace ordo::testing {

std::int64_t scalar(const std::string& url, const std::string& sql) {
    pqxx::connection conn{url};
    pqxx::nontransaction tx{conn};
    auto r = tx.exec(sql);
    return r.empty() || r[0][0].is_null() ? 0 : r[0][0].as<std::int64_t>();
}

bool store_settled(const std::string& url) {
    return scalar(url,
                  "SELECT count(*) FROM ordo.events WHERE transaction_id >= "
                  "pg_snapshot_xmin(pg_current_snapshot())") == 0;
}

}  // namespace ordo::testing
