#include "tests/support/conditions.hpp"

#include <pqxx/pqxx>

namespace ordo::testing {

std::int64_t scalar(const std::string& url, const std::string& sql) {
    pqxx::connection conn{url};
    pqxx::nontransaction tx{conn};
    auto r = tx.exec(sql);
    return r.empty() || r[0][0].is_null() ? 0 : r[0][0].as<std::int64_t>();
}

}  // namespace ordo::testing
