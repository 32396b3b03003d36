// One value read by SQL on a fresh connection, whether every stored event's transaction is
// older than the oldest one still running in the cluster, and a read of all that waits for it.
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

std::vector<eventstore::RecordedEvent> read_all_until(eventstore::Store& store,
                                                      eventstore::Checkpoint after,
                                                      std::size_t count) {
    std::vector<eventstore::RecordedEvent> out;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
    while (out.size() < count && std::chrono::steady_clock::now() < deadline) {
        auto batch = store.read_all(after, count - out.size());
        if (batch.empty()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            continue;
        }
        after = batch.back().checkpoint();
        out.insert(out.end(), batch.begin(), batch.end());
    }
    return out;
}

}  // namespace ordo::testing
