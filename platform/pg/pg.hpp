// The PostgreSQL connection pool: bounded, lazily opened connections, a watchdog over each
// transaction, and the one classification of database failures.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "platform/core/errors.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::platform::pg {

// Registers the prepared statements a component needs on each new connection.
using Preparer = std::function<void(pqxx::connection&)>;

struct PoolOptions {
    std::string url;
    std::size_t size = 8;
    std::chrono::milliseconds acquire_timeout{2000};
    std::chrono::milliseconds statement_timeout{5000};
    std::chrono::milliseconds idle_in_transaction_timeout{10000};
    std::string name = "default";  // label for metrics; application_name "ordo-<name>-pool"
    std::vector<Preparer> preparers;
    // Client-side bound on one transaction of transact(), from the lease to the end of the
    // commit (and on a new connection's setup). Zero: derived, see operation_bound().
    std::chrono::milliseconds operation_timeout{0};
};

// How long transact() lets one transaction run before it gives up on the server:
// `operation_timeout` when set; otherwise twice the statement timeout, so that the server
// cancels a slow statement first, with its own clear error, and this bound catches a server
// that says nothing at all (stopped, or its host gone on a path that still acknowledges).
// Nullopt (no bound) when both are zero.
std::optional<std::chrono::milliseconds> operation_bound(const PoolOptions& options);

// `url` with the parameters that let libpq notice a dead peer, unless the URL sets them
// itself: TCP keepalives (idle 5 s, then every 2 s, 3 probes), tcp_user_timeout 10 s (data
// unacknowledged that long breaks the connection), connect_timeout 5 s, and
// application_name (how an operator finds the connections in pg_stat_activity).
std::string connection_url(const std::string& url, const std::string& application_name);

// Turns off libpqxx 6's silent re-opening of a broken connection (see session.hpp).
void never_reconnect(pqxx::connection_base& conn);

// A bounded pool of connections. Connections are opened lazily and discarded after a
// connection-level failure, so the pool heals by itself when Postgres comes back.
// Connections carry connection_url()'s parameters and never reconnect by themselves. A
// transaction that outlives operation_bound() has its socket shut down by a watchdog
// thread: the blocked call fails, the connection is discarded, and transact() throws
// Unavailable (OutcomeUnknown when the commit was under way). Keepalives cannot do this
// alone: a stopped server process on a host that is up still has its kernel acknowledge
// every packet.
// Waiters are served in arrival order: a released connection goes to the longest waiter,
// so no caller can be overtaken again and again until its deadline passes.
// Thread-safe.
class Pool {
   public:
    class Lease {
       public:
        Lease(Lease&& other) noexcept;
        Lease& operator=(Lease&&) = delete;
        ~Lease();
        pqxx::connection& operator*() { return *conn_; }
        pqxx::connection* operator->() { return conn_.get(); }
        // The connection is not reused (call after an error that may have broken it).
        void discard() { discard_ = true; }

       private:
        friend class Pool;
        Lease(Pool& pool, std::unique_ptr<pqxx::connection> conn);
        Pool* pool_;
        std::unique_ptr<pqxx::connection> conn_;
        bool discard_ = false;
    };

    explicit Pool(PoolOptions options);
    ~Pool();
    Pool(const Pool&) = delete;
    Pool& operator=(const Pool&) = delete;

    // Waits until `deadline` (default: acquire_timeout from now) for a connection. Throws
    // Overloaded when none came free in time (nothing was started), Unavailable when the
    // database cannot be reached.
    Lease acquire();
    Lease acquire(std::chrono::steady_clock::time_point deadline);

    // Runs `work` in a transaction of type Txn on a pooled connection and commits. A
    // connection that failed is not returned to the pool.
    template <class Txn = pqxx::work, class Fn>
    auto transact(Fn&& work) {
        return transact<Txn>(std::chrono::steady_clock::now() + options_.acquire_timeout,
                             std::forward<Fn>(work));
    }

    // The same, waiting for a connection only until `deadline`.
    template <class Txn = pqxx::work, class Fn>
    auto transact(std::chrono::steady_clock::time_point deadline, Fn&& work) {
        auto lease = acquire(deadline);
        Watch watch{*this, *lease};
        try {
            Txn txn{*lease};
            if constexpr (std::is_void_v<decltype(work(txn))>) {
                work(txn);
                commit(txn);
                if (watch.end()) lease.discard();
            } else {
                auto result = work(txn);
                commit(txn);
                if (watch.end()) lease.discard();
                return result;
            }
        } catch (...) {
            const bool timed_out = watch.end();
            if (timed_out || is_connection_failure(std::current_exception())) lease.discard();
            if (timed_out) gave_up();
            throw;
        }
    }

    void register_metrics(metrics::Registry& registry);
    std::size_t in_use() const;
    std::size_t size() const { return options_.size; }
    const PoolOptions& options() const { return options_; }

    static bool is_connection_failure(const std::exception_ptr& error);

    // Commits; a connection lost during the commit throws OutcomeUnknown (the connection is
    // then discarded by transact, as a connection failure).
    template <class Txn>
    static void commit(Txn& txn) {
        try {
            txn.commit();
        } catch (const pqxx::in_doubt_error& e) {
            std::throw_with_nested(
                OutcomeUnknown(std::string{"the connection broke during the commit: "} + e.what()));
        }
    }

   private:
    class Watchdog;

    // The watchdog's hold on one connection for one operation: armed when made, disarmed
    // by end() (or the destructor), before the connection can be closed or reused.
    class Watch {
       public:
        Watch(Pool& pool, pqxx::connection& conn);
        Watch(const Watch&) = delete;
        Watch& operator=(const Watch&) = delete;
        ~Watch() { end(); }
        // Disarms; true when the bound had passed and the socket was shut down.
        bool end();

       private:
        Watchdog* watchdog_;
        std::uint64_t id_ = 0;
        bool ended_ = false;
        bool fired_ = false;
    };

    // In a catch block after the watchdog fired: rethrows what is being handled as
    // Unavailable (nested), unless it is OutcomeUnknown already.
    [[noreturn]] void gave_up() const;

    // A caller waiting for a connection. The releaser hands it a connection, or the right
    // to open one (the slot of a connection that was discarded).
    struct Waiter {
        std::condition_variable wake;
        std::unique_ptr<pqxx::connection> conn;
        bool may_open = false;
    };

    std::unique_ptr<pqxx::connection> connect();
    // Opens a connection on a slot already counted in open_ and leased_.
    Lease open_counted();
    // Gives a slot (or connection) to the longest waiter; false when nobody waits.
    bool hand_over(std::unique_ptr<pqxx::connection>& conn);
    void release(std::unique_ptr<pqxx::connection> conn, bool discard);

    PoolOptions options_;
    mutable std::mutex mutex_;
    // Never both non-empty: while anyone waits, every slot is open and leased.
    std::deque<Waiter*> waiters_;
    std::vector<std::unique_ptr<pqxx::connection>> idle_;
    std::size_t open_ = 0;  // idle + leased + being opened
    std::size_t leased_ = 0;
    std::unique_ptr<Watchdog> watchdog_;  // null without an operation bound
};

// The one place where database failures are classified. Transient: the connection was
// lost, the server is starting or shutting down, a serialization failure or deadlock, a
// statement or lock timeout, too many connections. Everything else is permanent.
FailureKind classify(const std::exception_ptr& error);
FailureKind classify_sqlstate(const std::string& sqlstate);

// SQLSTATE of a pqxx::sql_error, or empty.
std::string sqlstate_of(const std::exception_ptr& error);

}  // namespace ordo::platform::pg
