#pragma once

#include <memory>
#include <string>

#include "platform/log.hpp"

namespace ordo::platform::nats {

// A NATS connection that reconnects by itself, forever. Cheap to query for readiness.
class Connection {
   public:
    Connection(const std::string& url, Logger log);
    ~Connection();
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    bool connected() const;

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::platform::nats
