// The relay leader's PostgreSQL session: advisory lock, append listener, checkpoint row.
#include "relay/leader_session.hpp"

#include <stdexcept>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "platform/pg/advisory_locks.hpp"
#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"

namespace ordo::relay {
namespace {

using eventstore::AppendNotifier;
using eventstore::Checkpoint;
using eventstore::EventStore;

// First key of the relay's advisory lock (two-int form: key, shard).
constexpr int kRelayLockKey = platform::pg::advisory_locks::kRelayLeader;

// A write's condition: this very session holds the lock of shard $1, whose key is the
// parameter `key`.
std::string holds_lock(const std::string& key) {
    return "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND pid = "
           "pg_backend_pid() AND granted AND classid = " +
           key + "::int::oid AND objid = $1::int::oid AND objsubid = 2)";
}

// Thrown when the session that held the lock is gone or no longer holds it.
class LeadershipLost : public std::runtime_error {
   public:
    using std::runtime_error::runtime_error;
};

}  // namespace

// The session itself; LeaderSession forwards to it so that libpqxx stays out of the header.
class LeaderSession::Connection {
   public:
    Connection(const std::string& url, int shard)
        : conn_{url, "ordo-relay"}, shard_{shard}, appends_{conn_, [this] { woken_ = true; }} {
        pqxx::nontransaction tx{conn_};
        tx.exec("SET application_name = 'ordo-relay'; SET statement_timeout = 15000");
        backend_pid_ = conn_.backendpid();
    }

    bool try_lock() {
        check();
        pqxx::nontransaction tx{conn_};
        return tx
            .exec_params1("SELECT pg_try_advisory_lock($1::int, $2::int)", kRelayLockKey, shard_)[0]
            .as<bool>();
    }

    void unlock() {
        pqxx::nontransaction tx{conn_};
        tx.exec_params("SELECT pg_advisory_unlock($1::int, $2::int)", kRelayLockKey, shard_);
    }

    RelayState load() {
        check();
        pqxx::nontransaction tx{conn_};
        tx.exec_params(
            "INSERT INTO ordo.relay_checkpoint (shard) VALUES ($1) "
            "ON CONFLICT (shard) DO NOTHING",
            shard_);
        auto row = tx.exec_params1(
            "SELECT transaction_id::text, global_position, previous::text "
            "FROM ordo.relay_checkpoint WHERE shard = $1",
            shard_);
        RelayState state;
        state.checkpoint = {eventstore::transaction_id_from_xid8(row[0].c_str()),
                            row[1].as<std::int64_t>()};
        const auto previous = nlohmann::json::parse(row[2].as<std::string>());
        for (const auto& [partition, key] : previous.items()) {
            auto checkpoint = Checkpoint::parse_token(key.get<std::string>());
            if (!checkpoint) {
                throw std::runtime_error("the relay checkpoint's previous key of partition " +
                                         partition + " is not an order key: " + key.dump());
            }
            state.previous[std::stoi(partition)] = *checkpoint;
        }
        return state;
    }

    void save(const RelayState& state) {
        check();
        pqxx::nontransaction tx{conn_};
        auto result = tx.exec_params(
            std::string{"UPDATE ordo.relay_checkpoint SET transaction_id = $2::text::xid8, "
                        "global_position = $3, previous = $4::jsonb, updated_at = now() "
                        "WHERE shard = $1 AND "} +
                holds_lock("$5"),
            shard_, std::to_string(state.checkpoint.transaction_id), state.checkpoint.position,
            state.previous_json(), kRelayLockKey);
        if (result.affected_rows() != 1) {
            throw LeadershipLost("the relay lock is no longer held by this session");
        }
    }

    std::optional<std::string> report(const std::string& leader, double hidden_seconds,
                                      bool new_term) {
        check();
        pqxx::result result;
        try {
            pqxx::nontransaction tx{conn_};
            result = tx.exec_params(
                std::string{"UPDATE ordo.relay_checkpoint SET leader = $3, "
                            "horizon_hidden_seconds = $4, seen_at = now(), leader_since = CASE "
                            "WHEN $5 THEN now() ELSE leader_since END WHERE shard = $1 AND "} +
                    holds_lock("$2"),
                shard_, kRelayLockKey, leader, hidden_seconds, new_term);
        } catch (const pqxx::sql_error& e) {
            return e.what();  // the statement failed; the session itself is fine
        }
        if (result.affected_rows() != 1) {
            throw LeadershipLost("the relay lock is no longer held by this session");
        }
        return std::nullopt;
    }

    std::optional<double> hidden_for() {
        check();
        pqxx::nontransaction tx{conn_};
        return EventStore::hidden_for(tx);
    }

    EventStore::Unread unread_after(eventstore::Checkpoint after) {
        check();
        pqxx::nontransaction tx{conn_};
        return EventStore::unread_after(tx, after);
    }

    std::int64_t max_position() {
        check();
        pqxx::nontransaction tx{conn_};
        return tx.exec1("SELECT coalesce(max(global_position), 0) FROM ordo.events")[0]
            .as<std::int64_t>();
    }

    void wait_for_appends(std::chrono::milliseconds timeout) {
        if (!woken_) {
            appends_.await(timeout);
        }
        woken_ = false;
        check();
    }

   private:
    // A Session never comes back by itself; were it to, in a new session that holds no
    // lock, the backend's pid would say so.
    void check() {
        if (!conn_.is_open() || conn_.backendpid() != backend_pid_) {
            throw LeadershipLost("the relay's database session was lost");
        }
    }

    platform::pg::Session conn_;
    int shard_;
    bool woken_ = false;
    eventstore::AppendSubscription appends_;
    int backend_pid_ = 0;
};

LeaderSession::LeaderSession(const std::string& url, int shard)
    : connection_{std::make_unique<Connection>(url, shard)} {}

LeaderSession::~LeaderSession() = default;

bool LeaderSession::try_lock() {
    return connection_->try_lock();
}

void LeaderSession::unlock() {
    connection_->unlock();
}

RelayState LeaderSession::load() {
    return connection_->load();
}

void LeaderSession::save(const RelayState& state) {
    connection_->save(state);
}

std::optional<std::string> LeaderSession::report(const std::string& leader, double hidden_seconds,
                                                 bool new_term) {
    return connection_->report(leader, hidden_seconds, new_term);
}

std::optional<double> LeaderSession::hidden_for() {
    return connection_->hidden_for();
}

eventstore::EventStore::Unread LeaderSession::unread_after(eventstore::Checkpoint after) {
    return connection_->unread_after(after);
}

std::int64_t LeaderSession::max_position() {
    return connection_->max_position();
}

void LeaderSession::wait_for_appends(std::chrono::milliseconds timeout) {
    connection_->wait_for_appends(timeout);
}

}  // namespace ordo::relay
