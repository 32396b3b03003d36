#pragma once

// The relay leader's own PostgreSQL session (the shard's advisory lock, the append listener,
// the checkpoint) and the relay state it loads and saves.

#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "eventstore/event_store.hpp"

namespace ordo::relay {

// The relay's position and, per partition, the order key of the last event published there.
struct RelayState {
    eventstore::Checkpoint checkpoint;
    std::map<int, eventstore::Checkpoint> previous;

    // Moves past `event`, which was published to `partition`.
    void advance(const eventstore::RecordedEvent& event, int partition) {
        checkpoint = event.checkpoint();
        previous[partition] = checkpoint;
    }
    std::string previous_json() const {
        auto j = nlohmann::json::object();
        for (const auto& [partition, key] : previous) j[std::to_string(partition)] = key.token();
        return j.dump();
    }
};

// One leadership term: the session holds the shard's advisory lock, listens for appends and
// writes the checkpoint, so a checkpoint is only ever written while the lock is held. Every
// call but unlock throws once the session is lost or no longer holds the lock (libpqxx 6
// silently re-opens a broken connection; that new session holds no lock), which ends
// exactly this term's work. Not thread-safe.
class LeaderSession {
   public:
    LeaderSession(const std::string& url, int shard);
    ~LeaderSession();
    LeaderSession(const LeaderSession&) = delete;
    LeaderSession& operator=(const LeaderSession&) = delete;

    bool try_lock();
    void unlock();

    // The shard's checkpoint row, created at the start of the store when missing.
    RelayState load();
    // Writes only while this very session holds the lock: a session that pqxx silently
    // re-established, or one whose lock was released, writes nothing (and throws).
    void save(const RelayState& state);
    // Shows who leads the shard, since when (set on the term's first report) and the horizon
    // it measured, in the shard's checkpoint row (read.relays, the console). Same guard as
    // save, and LeadershipLost the same way; a statement that fails otherwise (a database
    // not yet migrated, a missing grant) only returns its error: the report feeds a display
    // and must never cost the leadership.
    std::optional<std::string> report(const std::string& leader, double hidden_seconds,
                                      bool new_term);

    // EventStore::hidden_for on the session.
    std::optional<double> hidden_for();
    // EventStore::unread_after on the session.
    eventstore::EventStore::Unread unread_after(eventstore::Checkpoint after);
    std::int64_t max_position();
    // Returns when an append was announced or after `timeout`.
    void wait_for_appends(std::chrono::milliseconds timeout);

   private:
    class Connection;
    std::unique_ptr<Connection> connection_;
};

}  // namespace ordo::relay
