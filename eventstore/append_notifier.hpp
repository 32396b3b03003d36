#pragma once

#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

#include "platform/log.hpp"

namespace ordo::eventstore {

// Sends NOTIFY ordo_events after appends have committed, coalescing bursts into one
// notification. NOTIFY inside the append transaction would hold PostgreSQL's notify-queue
// lock through the commit's WAL flush and so serialize every commit in the cluster; sent
// from here, on a connection with synchronous_commit off, it costs appenders nothing.
// A notification lost to a crash is covered by the subscribers' polling fallback.
class AppendNotifier {
   public:
    static constexpr const char* kChannel = "ordo_events";

    AppendNotifier(std::string url, platform::Logger log);
    ~AppendNotifier();
    AppendNotifier(const AppendNotifier&) = delete;
    AppendNotifier& operator=(const AppendNotifier&) = delete;

    // Called after a commit that appended events; never blocks on the database.
    void signal();

   private:
    void run();

    std::string url_;
    platform::Logger log_;
    std::mutex mutex_;
    std::condition_variable wake_;
    bool pending_ = false;
    bool stopping_ = false;
    std::thread thread_;
};

}  // namespace ordo::eventstore
