// The pool at work: connections opened with keepalive parameters, waiters served in arrival
// order, the watchdog that shuts overdue sockets down, failures classified by SQLSTATE.
#include "platform/pg/pg.hpp"

#include <poll.h>
#include <sys/socket.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "platform/core/config.hpp"
#include "platform/core/deadlines.hpp"
#include "platform/core/metrics.hpp"

namespace ordo::platform::pg {

std::optional<std::chrono::milliseconds> operation_bound(const PoolOptions& options) {
    if (options.operation_timeout > std::chrono::milliseconds::zero()) {
        return options.operation_timeout;
    }
    if (options.statement_timeout <= std::chrono::milliseconds::zero()) return std::nullopt;
    return std::max<std::chrono::milliseconds>(2 * options.statement_timeout,
                                               std::chrono::seconds(1));
}

std::string connection_url(const std::string& url, const std::string& application_name) {
    return with_default_parameters(url, {{"keepalives", "1"},
                                         {"keepalives_idle", "5"},
                                         {"keepalives_interval", "2"},
                                         {"keepalives_count", "3"},
                                         {"tcp_user_timeout", "10000"},
                                         {"connect_timeout", "5"},
                                         {"application_name", application_name}});
}

// Shuts down the sockets of operations past their deadline. It only shuts a socket down,
// never closes it, and only while its Watch is armed, under the same lock that disarming
// takes: the descriptor still belongs to the connection being watched. No cancel request
// is sent: it needs a new connection to the postmaster, which may be the process that
// stopped answering.
class Pool::Watchdog {
   public:
    explicit Watchdog(std::chrono::milliseconds bound)
        : bound_{bound}, thread_{[this] { run(); }} {}

    ~Watchdog() {
        {
            std::lock_guard lock{mutex_};
            stopping_ = true;
        }
        wake_.notify_one();
        thread_.join();
    }

    std::uint64_t arm(int socket) {
        std::lock_guard lock{mutex_};
        const auto due = std::chrono::steady_clock::now() + bound_;
        const auto id = deadlines_.arm(due);
        sockets_[id] = socket;
        // Every deadline is now + the same bound, so a new one is the latest, and the
        // thread, which never sleeps past now + bound, wakes in time without being told:
        // no wake-up (a context switch) per transaction.
        if (due < sleeping_until_) wake_.notify_one();
        return id;
    }

    // True when it fired.
    bool disarm(std::uint64_t id) {
        std::lock_guard lock{mutex_};
        if (fired_.erase(id) > 0) return true;
        deadlines_.disarm(id);
        sockets_.erase(id);
        return false;
    }

    std::chrono::milliseconds bound() const { return bound_; }

   private:
    void run() {
        std::unique_lock lock{mutex_};
        while (!stopping_) {
            for (auto id : deadlines_.take_due(std::chrono::steady_clock::now())) {
                ::shutdown(sockets_.at(id), SHUT_RDWR);
                sockets_.erase(id);
                fired_.insert(id);
            }
            sleeping_until_ = deadlines_.next().value_or(std::chrono::steady_clock::now() + bound_);
            wake_.wait_until(lock, sleeping_until_);
        }
    }

    const std::chrono::milliseconds bound_;
    std::mutex mutex_;
    std::condition_variable wake_;
    Deadlines deadlines_;
    std::map<std::uint64_t, int> sockets_;
    std::set<std::uint64_t> fired_;
    // When the thread wakes next at the latest (the earliest deadline, or now + bound).
    std::chrono::steady_clock::time_point sleeping_until_{};
    bool stopping_ = false;
    std::thread thread_;  // last: starts once the rest exists
};

Pool::Watch::Watch(Pool& pool, pqxx::connection& conn) : watchdog_{pool.watchdog_.get()} {
    if (watchdog_ && conn.sock() >= 0) {
        id_ = watchdog_->arm(conn.sock());
    } else {
        ended_ = true;
    }
}

bool Pool::Watch::end() {
    if (!ended_) {
        ended_ = true;
        fired_ = watchdog_->disarm(id_);
    }
    return fired_;
}

void Pool::gave_up() const {
    try {
        throw;
    } catch (const OutcomeUnknown&) {
        throw;
    } catch (...) {
        std::throw_with_nested(
            Unavailable("the database did not answer within " +
                        std::to_string(watchdog_ ? watchdog_->bound().count() : 0) + " ms (pool " +
                        options_.name + ")"));
    }
}

Pool::Lease::Lease(Pool& pool, std::unique_ptr<pqxx::connection> conn)
    : pool_{&pool}, conn_{std::move(conn)} {}

Pool::Lease::Lease(Lease&& other) noexcept
    : pool_{other.pool_}, conn_{std::move(other.conn_)}, discard_{other.discard_} {}

Pool::Lease::~Lease() {
    if (conn_) pool_->release(std::move(conn_), discard_);
}

Pool::Pool(PoolOptions options) : options_{std::move(options)} {
    if (auto bound = operation_bound(options_)) watchdog_ = std::make_unique<Watchdog>(*bound);
}

Pool::~Pool() = default;

void never_reconnect(pqxx::connection_base& conn) {
    // Deprecated in libpqxx 6 because version 7 never reconnects; until then it is the way.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
    conn.inhibit_reactivation(true);
#pragma GCC diagnostic pop
}

std::unique_ptr<pqxx::connection> Pool::connect() {
    auto conn = std::make_unique<pqxx::connection>(
        connection_url(options_.url, "ordo-" + options_.name + "-pool"));
    // A connection that broke is discarded; it must not come back by itself without the
    // session settings below, nor on another socket than the one being watched.
    never_reconnect(*conn);
    Watch watch{*this, *conn};
    try {
        pqxx::nontransaction setup{*conn};
        setup.exec("SET statement_timeout = " + std::to_string(options_.statement_timeout.count()) +
                   "; SET idle_in_transaction_session_timeout = " +
                   std::to_string(options_.idle_in_transaction_timeout.count()));
        setup.commit();
        for (const auto& prepare : options_.preparers) prepare(*conn);
    } catch (...) {
        if (watch.end()) gave_up();
        throw;
    }
    if (watch.end()) throw Unavailable("the database did not answer while connecting");
    return conn;
}

Pool::Lease Pool::acquire() {
    return acquire(std::chrono::steady_clock::now() + options_.acquire_timeout);
}

namespace {
// Whether an idle connection's socket has anything to read, or has failed. Idle, a pooled
// connection is owed nothing (it listens for no notification): what came is the server's
// goodbye (a terminated backend, a server that shut down or restarted) and the end of the
// stream. Such a connection fails on its first use, so it is closed before it is leased:
// otherwise every idle connection of a pool fails one operation in turn after the server
// dropped them all, each failure a retry, a breaker probe or a saga step spent. A peer
// that vanished without a word is found on first use, as before.
bool dropped_by_server(pqxx::connection& conn) {
    const int fd = conn.sock();
    if (fd < 0) return true;
    ::pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    return ::poll(&p, 1, 0) != 0;
}
}  // namespace

Pool::Lease Pool::acquire(std::chrono::steady_clock::time_point deadline) {
    std::vector<std::unique_ptr<pqxx::connection>> dropped;  // closed once the lock is let go
    std::unique_lock lock{mutex_};
    if (waiters_.empty()) {
        while (!idle_.empty()) {
            auto conn = std::move(idle_.back());
            idle_.pop_back();
            if (dropped_by_server(*conn)) {
                dropped.push_back(std::move(conn));
                --open_;
                continue;
            }
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
