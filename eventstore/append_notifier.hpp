#pragma once

// Append notifications: NOTIFY ordo_events after commits, and the ways to listen for them.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "platform/core/log.hpp"

namespace pqxx {
class connection_base;
}

namespace ordo::eventstore {

// Sends NOTIFY ordo_events after appends have committed, coalescing bursts into one
// notification. NOTIFY inside the append transaction would hold PostgreSQL's notify-queue
// lock through the commit's WAL flush and so serialize every commit in the cluster; sent
// from here, on a connection with synchronous_commit off, it costs appenders nothing.
// A notification lost to a crash is covered by the subscribers' polling fallback.
// The same sender serves a second channel, kProgressChannel: the projector's committed
// checkpoints, which the query service's consistency-token waits listen for.
class AppendNotifier {
   public:
    static constexpr const char* kChannel = "ordo_events";
    static constexpr const char* kProgressChannel = "ordo_progress";

    // `channel`: one of the two above.
    AppendNotifier(std::string url, platform::Logger log, std::string channel = kChannel);
    ~AppendNotifier();
    AppendNotifier(const AppendNotifier&) = delete;
    AppendNotifier& operator=(const AppendNotifier&) = delete;

    // Called after a commit that appended events; never blocks on the database.
    void signal();

   private:
    void run();

    std::string url_;
    platform::Logger log_;
    std::string channel_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool pending_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

// The one way Ordo listens for append notifications: LISTEN on a connection its owner
// already holds (a relay leader's or a slot owner's session, which also holds their advisory
// locks, or AppendListener's own). `on_append` runs on the owner's thread, inside await(),
// once per notification. Lives no longer than the connection.
class AppendSubscription {
   public:
    AppendSubscription(pqxx::connection_base& connection, std::function<void()> on_append,
                       const std::string& channel = AppendNotifier::kChannel);
    ~AppendSubscription();
    AppendSubscription(const AppendSubscription&) = delete;
    AppendSubscription& operator=(const AppendSubscription&) = delete;

    // Waits up to `timeout` for a notification on the connection (running on_append for each
    // that came), or until `bell` — a descriptor another thread makes readable to wake this
    // one, -1 for none — is readable. Throws what the connection throws when it breaks.
    void await(std::chrono::microseconds timeout, int bell = -1);

   private:
    struct Receiver;
    pqxx::connection_base& connection_;
    std::unique_ptr<Receiver> receiver_;
};

// Listens for append notifications (or those of `channel`) on a connection of its own and
// wakes the threads that wait for them: workers that would otherwise poll. Reconnects after a
// failure; meanwhile waits simply time out, which makes them polls. `on_notify`, when given,
// runs on the listener's thread for each notification, and must be quick. Each time it
// starts listening (first, and after a reconnect) it announces once, as if notified: appends
// made while it was not listening reached no one.
class AppendListener {
   public:
    AppendListener(std::string url, platform::Logger log,
                   std::string channel = AppendNotifier::kChannel,
                   std::function<void()> on_notify = {});
    ~AppendListener();
    AppendListener(const AppendListener&) = delete;
    AppendListener& operator=(const AppendListener&) = delete;

    // The count of notifications so far; read it before looking for work, then wait with it.
    std::uint64_t seen() const;
    // Returns once a notification came after `seen`, or after `timeout`. A notification
    // wakes one waiting thread, not all: a crowd of workers woken at once for one due
    // process would only compete for it (measured: it slowed the saga benchmark's drain).
    void wait(std::uint64_t seen, std::chrono::milliseconds timeout);

   private:
    void run();

    std::string url_;
    platform::Logger log_;
    std::string channel_;
    std::function<void()> on_notify_;
    mutable std::mutex mutex_;
    std::condition_variable announced_;
    std::uint64_t count_ = 0;
    std::atomic<bool> stopping_{false};
    std::thread thread_;
};

}  // namespace ordo::eventstore
