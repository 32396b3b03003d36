// Live event subscriptions (the events API's server-sent-events stream): one thread reads the
// store (every shard of it) for every subscriber, and a reader that does not keep up is cut
// off, never buffered without bound.
#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "eventstore/events.hpp"
#include "platform/core/log.hpp"
#include "platform/http/http.hpp"
#include "query/event_feed.hpp"
#include "query/shard_sources.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::query {

// Every subscriber gets every selected event committed after its starting position, once, in
// commit order (the store's horizon order, as read_range gives it), and nothing it did not
// select. Resuming from the id of the last event received (Last-Event-ID) continues without a
// gap or a repeat, across reconnects and across restarts of the service.
//
// Over a sharded store each shard is a source with its own commit order, head and append
// notifications, and a subscriber's position is a checkpoint in each (FeedPosition): it gets
// each shard's events in that shard's order, the shards' interleaved as they are read. A shard
// added to the sources while subscribers read (a newer map names it) is read from the next
// round, each subscriber from its beginning. The copies a partition move brings to a shard
// are its events too: a subscriber that had them from the old shard gets them again, with the
// same ids and stream versions.
//
// How, for each source: one thread keeps a head H, the newest event it has read below the
// horizon. A subscriber behind H catches up with reads of its own selection up to H (EventStore::
// read_selected: a page, looking at `max_scan` events at most), refilled once it has less than
// a quarter of `max_buffered` unsent and up to half of it: it is held back, never cut off.
// Once its reads reach H it goes live. Live subscribers share one read of whatever commits
// after H, each taking its selection of it and skipping what it has (a subscriber may resume
// ahead of H, from a page's next_after). Each catch-up read runs on its own, so one that fails
// holds up no other. Rounds start on an append notification (LISTEN on a connection of the
// thread's own), when a subscriber comes, and every `poll` otherwise. After a round it asks
// each source what is left after its head (EventStore::unread_after): events readable now
// start another round at once, and appends hidden by the horizon are looked for again soon
// (as HorizonWait does).
//
// Limits: at most `capacity` subscribers (reserve() refuses beyond). A live subscriber with
// more than `max_buffered` bytes unsent, or any with bytes unsent and none written for
// `stall`, is cut off: what is unsent is dropped and an "end" message saying why goes in its
// place (StreamSink::abort), so the client knows where to resume. A subscriber costs its
// record and its connection's buffers plus at most `max_buffered` unsent; memory does not
// grow with the events it is sent.
//
// Thread-safe.
class Subscriptions {
   public:
    struct Options {
        std::size_t capacity = 512;  // keep it below the server's connection cap
        std::size_t max_buffered = std::size_t{1} << 20;
        std::size_t page = 500;
        std::size_t max_scan = 10'000;  // events a filtered catch-up read looks at, at most
        std::chrono::milliseconds heartbeat{15'000};
        std::chrono::milliseconds poll{500};
        std::chrono::milliseconds stall{60'000};
        int client_retry_ms = 2000;  // the stream's "retry:" for clients that reconnect
    };

    // A place among the `capacity`, held from the request's answer until the stream opens;
    // dropped unused, it is given back.
    class Place;

    // Reads the shards of `sources`, and each one added to it later: its subscribers' positions
    // then name it too, from its beginning. Events are sent as_current through `upcasters`.
    // Both must outlive this.
    Subscriptions(ShardSources& sources, const eventstore::Upcasters* upcasters, Options options,
                  platform::Logger log, platform::metrics::Registry* metrics = nullptr);
    ~Subscriptions();  // stop()
    Subscriptions(const Subscriptions&) = delete;
    Subscriptions& operator=(const Subscriptions&) = delete;

    // Null when `capacity` subscribers (or places) are taken.
    std::shared_ptr<Place> reserve();
    // Streams to `stream` every selected event after `after` (a position over shards of the
    // sources), in the place reserved.
    void subscribe(std::shared_ptr<Place> place, FeedPosition after, EventSelection selection,
                   platform::http::Stream stream);

    std::size_t subscribers() const;

    // Ends every stream (an "end" message of type "unavailable") and joins the thread.
    // Idempotent.
    void stop();

   private:
    struct Impl;
    std::shared_ptr<Impl> impl_;
};

}  // namespace ordo::query
