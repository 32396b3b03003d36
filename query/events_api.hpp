// The events API: all events in commit order, paged (GET /v1/events) and live as server-sent
// events (GET /v1/events/stream), for clients that react to Ordo's events without NATS. Over
// a sharded store: every shard's events, each shard's in its own commit order.
#pragma once

#include <atomic>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "platform/core/log.hpp"
#include "platform/http/http.hpp"
#include "query/subscriptions.hpp"

namespace ordo::query {

// Both routes need the read scope and take the same selection: `category` and `type`, each a
// comma-separated list (at most kMaxNames names; absent: all), and the position to start
// after (`after`, a position this API returned; absent: the beginning of history).
//
// A page holds at most `limit` events (default 100, at most 1000) and `next_after`: the
// position to ask from next. A short page has read everything selected up to `next_after`,
// which can run ahead of its last event (to the head, or as far as a filtered page looked);
// reading on from it never misses one. A short page is not the end of history: the end is a
// page that comes back empty with `next_after` unchanged. The stream sends the same events as
// messages (see Subscriptions), and a Last-Event-ID header overrides `after`, as a reconnecting
// EventSource sends it.
//
// Over shards a position names a checkpoint per shard (FeedPosition), and a page holds the
// earliest recorded of what each shard has next (merge_reads). The shards are read at once,
// each on its own thread. A shard that cannot be read keeps its place: the page holds the
// others' events, and that shard's follow once it is back. Its reads then rest a few seconds,
// so a shard whose host does not answer does not hold every page for a connect timeout. Only
// when no shard can be read is the answer 503.
//
// The shards read are those of `sources` (the subscriptions'), with pools of the query role
// prepared with EventStore::prepare_reader, as they are when the request comes. A position
// that names a shard they lack (one a move brought in since the last look at the map) makes
// them read the map at once: the shard is read if the map names it, the position refused if
// not, and the answer is 503 with Retry-After when the map cannot be asked now.
class EventsApi {
   public:
    static constexpr std::size_t kMaxNames = 32;
    static constexpr std::int64_t kDefaultLimit = 100;
    static constexpr std::int64_t kMaxLimit = 1000;
    // Events a filtered page looks at, at most (see EventStore::read_selected).
    static constexpr std::size_t kMaxScan = 10'000;

    // Pages show events as_current through `upcasters`, which must outlive this.
    EventsApi(ShardSources& sources, Subscriptions& subscriptions,
              const eventstore::Upcasters* upcasters, platform::Logger log);

    void register_routes(platform::http::Router& router);

   private:
    platform::http::Response page(platform::http::Request& request);
    platform::http::Response stream(platform::http::Request& request);

    // The sources to read for a request whose positions are `tokens` (each absent or as
    // sent), with the shards the positions name confirmed first (ShardSources::confirm).
    // nullopt when a position names a shard that could not be confirmed now: the answer is
    // then 503, not a refusal of a position another replica gave a moment ago.
    std::optional<std::vector<ShardSource>> sources_for(
        std::initializer_list<const std::string*> tokens);

    ShardSources& sources_;
    // Per shard id: the steady clock's count until which it is not read (after a failure).
    std::unique_ptr<std::atomic<std::int64_t>[]> resting_until_;
    Subscriptions& subscriptions_;
    const eventstore::Upcasters* upcasters_;
    platform::Logger log_;
};

}  // namespace ordo::query
