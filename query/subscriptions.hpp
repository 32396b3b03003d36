// Live event subscriptions (the events API's server-sent-events stream): one thread reads the
// store for every subscriber, and a reader that does not keep up is cut off, never buffered
// without bound.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>

#include "eventstore/events.hpp"
#include "platform/core/log.hpp"
#include "platform/http/http.hpp"
#include "query/event_feed.hpp"

namespace ordo::platform::pg {
class Pool;
}
namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::query {

// Every subscriber gets every selected event committed after its starting position, once, in
// commit order (the store's horizon order, as read_range gives it), and nothing it did not
// select. Resuming from the id of the last event received (Last-Event-ID) continues without a
// gap or a repeat, across reconnects and across restarts of the service.
//
// How: one thread keeps a head H, the newest event it has read below the horizon. A
// subscriber behind H catches up with reads of its own selection up to H, one page a round
// and only up to half of `max_buffered` unsent (it is held back, never cut off); once a read
// comes back short it has seen everything up to H and goes live. Live subscribers share one
// read of whatever commits after H, each taking its selection of it. Rounds start on an append
// notification (LISTEN on a connection of the thread's own), when a subscriber comes, and every
// `poll` otherwise; appends hidden by the horizon are looked for again soon (as HorizonWait does).
//
// Limits: at most `capacity` subscribers (reserve() refuses beyond); a subscriber with more
// than `max_buffered` bytes unsent, or with bytes unsent and none written for `stall`, is sent
// an "end" message saying why and cut off. A subscriber costs its Subscriber record and its
// connection's buffers; memory does not grow with the events it is sent.
//
// Thread-safe.
class Subscriptions {
   public:
    struct Options {
        std::size_t capacity = 4096;
        std::size_t max_buffered = std::size_t{4} << 20;
        std::size_t page = 500;
        std::chrono::milliseconds heartbeat{15'000};
        std::chrono::milliseconds poll{500};
        std::chrono::milliseconds stall{60'000};
        int client_retry_ms = 2000;  // the stream's "retry:" for clients that reconnect
    };

    // A place among the `capacity`, held from the request's answer until the stream opens;
    // dropped unused, it is given back.
    class Place;

    // `pool` must be prepared with EventStore::prepare_reader; `listen_url` is where append
    // notifications are listened for (the pool's database). Events are sent as_current
    // through `upcasters`, which must outlive this.
    Subscriptions(platform::pg::Pool& pool, std::string listen_url,
                  const eventstore::Upcasters* upcasters, Options options, platform::Logger log,
                  platform::metrics::Registry* metrics = nullptr);
    ~Subscriptions();  // stop()
    Subscriptions(const Subscriptions&) = delete;
    Subscriptions& operator=(const Subscriptions&) = delete;

    // Null when `capacity` subscribers (or places) are taken.
    std::shared_ptr<Place> reserve();
    // Streams to `stream` every selected event after `after`, in the place reserved.
    void subscribe(std::shared_ptr<Place> place, eventstore::Checkpoint after,
                   EventSelection selection, platform::http::Stream stream);

    std::size_t subscribers() const;
    // Rounds the thread has run (lets tests wait for a fresh look without sleeping blindly).
    std::uint64_t rounds() const;

    // Ends every stream (an "end" message of type "unavailable") and joins the thread.
    // Idempotent.
    void stop();

   private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace ordo::query
