// The HTTP server's cap on open connections: a total, and a share per client address, so
// that one client cannot take them all.
#pragma once

#include <cstddef>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ordo::platform {

// How many connections a server holds open: at most `total`, and at most `per_client` from
// one client address, so that one client (or one address behind which many hide) cannot
// take every connection from the rest. Thread-safe.
class ConnectionBudget {
   public:
    enum class Verdict { admitted, over_total, over_client };

    ConnectionBudget(std::size_t total, std::size_t per_client)
        : total_{total}, per_client_{per_client} {}

    // Admits one connection from `client` if both limits allow; each admitted connection is
    // released exactly once.
    Verdict admit(const std::string& client);
    void release(const std::string& client);

    std::size_t open() const;
    std::size_t open_from(const std::string& client) const;

   private:
    const std::size_t total_;
    const std::size_t per_client_;
    mutable std::mutex mutex_;
    std::size_t open_ = 0;
    std::unordered_map<std::string, std::size_t> by_client_;  // no zero entries
};

}  // namespace ordo::platform
