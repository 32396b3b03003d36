#pragma once

#include <memory>
#include <string>

#include "platform/log.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::platform::nats {

// A NATS connection that reconnects by itself, forever. Cheap to query for readiness.
class Connection {
   public:
    // Counts ordo_nats_reconnects_total{connection="nats"} in `metrics` when given.
    Connection(const std::string& url, Logger log, metrics::Registry* metrics = nullptr);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool connected() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::platform::nats
