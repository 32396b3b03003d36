#include "platform/pg.hpp"

#include <algorithm>

#include "platform/metrics.hpp"

namespace ordo::platform::pg {

Pool::Lease::Lease(Pool& pool, std::unique_ptr<pqxx::connection> conn)
    : pool_{&pool}, conn_{std::move(conn)} {}

Pool::Lease::Lease(Lease&& other) noexcept
    : pool_{other.pool_}, conn_{std::move(other.conn_)}, discard_{other.discard_} {}

Pool::Lease::~Lease() {
    if (conn_) pool_->release(std::move(conn_), discard_);
}

Pool::Pool(PoolOptions options) : options_{std::move(options)} {}

std::unique_ptr<pqxx::connection> Pool::connect() {
    auto conn = std::make_unique<pqxx::connection>(options_.url);
    pqxx::nontransaction setup{*conn};
    setup.exec("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()) +
               "; SET idle_in_transaction_session_timeout = " +
               std::to_string(options_.idle_in_transaction_timeout.count()));
    setup.commit();
    for (const auto& prepare : options_.preparers) prepare(*conn);
    return conn;
}

Pool::Lease Pool::acquire() {
    return acquire(std::chrono::steady_clock::now() + options_.acquire_timeout);
}

Pool::Lease Pool::acquire(std::chrono::steady_clock::time_point deadline) {
    std::unique_lock lock{mutex_};
    if (waiters_.empty()) {
        if (!idle_.empty()) {
            auto conn = std::move(idle_.back());
            idle_.pop_back();
            ++leased_;
            return Lease{*this, std::move(conn)};
        }
        if (open_ < options_.size) {
            ++open_;
            ++leased_;
            lock.unlock();
            return open_counted();
        }
    }
    Waiter self;
    waiters_.push_back(&self);
    const bool served =
        self.wake.wait_until(lock, deadline, [&] { return self.conn || self.may_open; });
    if (!served) {
        waiters_.erase(std::find(waiters_.begin(), waiters_.end(), &self));
        throw Overloaded("no database connection came free in time (pool " + options_.name +
                         " of " + std::to_string(options_.size) + ")");
    }
    // The releaser counted the slot as leased to us.
    if (self.conn) return Lease{*this, std::move(self.conn)};
    lock.unlock();
    return open_counted();
}

Pool::Lease Pool::open_counted() {
    try {
        return Lease{*this, connect()};
    } catch (const std::exception& e) {
        std::unique_ptr<pqxx::connection> none;
        std::lock_guard lock{mutex_};
        if (!hand_over(none)) {
            --open_;
            --leased_;
        }
        throw Unavailable(std::string{"database unreachable: "} + e.what());
    }
}

bool Pool::hand_over(std::unique_ptr<pqxx::connection>& conn) {
    if (waiters_.empty()) return false;
    auto* next = waiters_.front();
    waiters_.pop_front();
    if (conn) {
        next->conn = std::move(conn);
    } else {
        next->may_open = true;
    }
    next->wake.notify_one();
    return true;
}

void Pool::release(std::unique_ptr<pqxx::connection> conn, bool discard) {
    bool usable = !discard && conn->is_open();
    if (!usable) conn.reset();  // closing is cheap
    std::lock_guard lock{mutex_};
    if (hand_over(conn)) return;  // the slot stays open and leased, now by the waiter
    --leased_;
    if (usable) {
        idle_.push_back(std::move(conn));
    } else {
        --open_;
    }
}

std::size_t Pool::in_use() const {
    std::lock_guard lock{mutex_};
    return leased_;
}

void Pool::register_metrics(metrics::Registry& registry) {
    registry.gauge_callback("ordo_db_pool_in_use", "Database connections leased from the pool",
                            {{"pool", options_.name}},
                            [this] { return static_cast<double>(in_use()); });
    registry.gauge_callback("ordo_db_pool_size", "Maximum connections in the pool",
                            {{"pool", options_.name}},
                            [this] { return static_cast<double>(options_.size); });
}

bool Pool::is_connection_failure(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const pqxx::broken_connection&) {
        return true;
    } catch (const pqxx::in_doubt_error&) {
        return true;
    } catch (const OutcomeUnknown&) {  // an in_doubt_error, as commit() reports it
        return true;
    } catch (const pqxx::sql_error& e) {
        const auto& state = e.sqlstate();
        return state.rfind("08", 0) == 0 || state.rfind("57P", 0) == 0;
    } catch (...) {
        return false;
    }
}

FailureKind classify_sqlstate(const std::string& state) {
    if (state.rfind("08", 0) == 0) return FailureKind::transient;   // connection exception
    if (state.rfind("57P", 0) == 0) return FailureKind::transient;  // shutdown, cannot connect
    if (state.rfind("53", 0) == 0) return FailureKind::transient;   // insufficient resources
    if (state == "40001" || state == "40P01") return FailureKind::transient;  // serialization
    if (state == "55P03" || state == "57014") return FailureKind::transient;  // lock/stmt timeout
    if (state == "25P03") return FailureKind::transient;  // idle-in-transaction timeout
    return FailureKind::permanent;
}

// libpqxx 6.4 leaves sqlstate() empty for some exception classes and throws others
// outside sql_error altogether; the type tells what the code was.
std::string sqlstate_of(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const pqxx::serialization_failure&) {
        return "40001";
    } catch (const pqxx::deadlock_detected&) {
        return "40P01";
    } catch (const pqxx::too_many_connections&) {
        return "53300";
    } catch (const pqxx::insufficient_privilege& e) {
        return e.sqlstate().empty() ? "42501" : e.sqlstate();
    } catch (const pqxx::sql_error& e) {
        return e.sqlstate();
    } catch (...) {
        return {};
    }
}

FailureKind classify(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const pqxx::broken_connection&) {
        return FailureKind::transient;
    } catch (const pqxx::in_doubt_error&) {
        return FailureKind::transient;
    } catch (const pqxx::transaction_rollback&) {  // serialization failure, deadlock
        return FailureKind::transient;
    } catch (const pqxx::sql_error&) {
        return classify_sqlstate(sqlstate_of(error));
    } catch (const Unavailable&) {
        return FailureKind::transient;
    } catch (...) {
        return FailureKind::permanent;
    }
}

}  // namespace ordo::platform::pg
