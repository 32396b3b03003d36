// The Query API: read models over HTTP, with ETags and read-your-writes consistency tokens.
#pragma once

#include <cstddef>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <pqxx/connection>

#include "eventstore/event_store.hpp"
#include "platform/core/log.hpp"
#include "platform/http/http.hpp"
#include "query/progress_watch.hpp"
#include "query/span_store.hpp"

namespace ordo::platform::pg {
class Pool;
}
namespace ordo::platform::metrics {
class Histogram;
class Registry;
}  // namespace ordo::platform::metrics

namespace ordo::query {

// The Query API: read models over HTTP, on the query role (it sees only schema `read`).
//
// Single resources carry ETag "<version>" and answer If-None-Match with 304. A request with
// X-Consistency-Token waits, up to ?wait_ms=, until the projections the route reads have
// passed that position, then answers from the read model (read-your-writes); otherwise 503
// projection_lagging. `partitions` must be the projectors' partition count, or a single
// resource's wait looks at the wrong partition.
//
// Thread-safe. A request that must wait holds no worker thread and no connection: it is
// parked with the ProgressWatch, which one thread serves for all of them, and answered on a
// worker once its partitions pass the token (or its wait runs out). At most `max_waiting`
// requests are parked at once; one more is answered 503 unavailable with Retry-After at
// once. Reads that need no wait never queue behind parked ones.
class QueryService {
   public:
    static constexpr std::size_t kMaxWaiting = 1024;

    // With `metrics`, a read with a consistency token observes how long it waited for the
    // token (hop "query_token_wait" of ordo_hop_seconds).
    // With `spans` (the built-in collector's store), a trace shows its spans beside its events.
    QueryService(platform::pg::Pool& pool, int partitions, platform::Logger log,
                 std::size_t max_waiting = kMaxWaiting,
                 platform::metrics::Registry* metrics = nullptr, const SpanStore* spans = nullptr);

    // Requests parked for a consistency token now.
    std::size_t waiting() const { return watch_.waiting(); }
    // How often the parked requests' progress has been read (for tests).
    std::uint64_t consistency_polls() const { return watch_.polls(); }

    // Registers this class's prepared statements; add it to the pool's preparers.
    static void prepare(pqxx::connection& conn);

    void register_routes(platform::http::Router& router);

   private:
    platform::http::Response get_order(platform::http::Request& request);
    platform::http::Response list_orders(platform::http::Request& request);
    platform::http::Response get_inventory(platform::http::Request& request);
    platform::http::Response get_account(platform::http::Request& request);
    platform::http::Response get_saga(platform::http::Request& request);
    platform::http::Response get_trace(platform::http::Request& request);
    platform::http::Response list_projections(platform::http::Request& request);
    platform::http::Response list_dead_letters(platform::http::Request& request);
    platform::http::Response list_relays(platform::http::Request& request);

    // Honours X-Consistency-Token for `reads`, then answers with `answer` (at once, or later
    // from a worker when the request had to be parked; `answer` must own what it uses).
    platform::http::Response serve(const platform::http::Request& request,
                                   const std::optional<eventstore::ShardToken>& token,
                                   std::chrono::milliseconds wait, const Reads& reads,
                                   std::function<platform::http::Response()> answer);
    // Runs `answer`, mapping database failures to 503 unavailable.
    platform::http::Response guarded(const platform::TraceContext& trace,
                                     const std::function<platform::http::Response()>& answer);
    bool has_passed(const Reads& reads, eventstore::Checkpoint token, int shard);

    platform::pg::Pool& pool_;
    int partitions_;
    platform::Logger log_;
    platform::metrics::Histogram* token_wait_;  // null without metrics
    const SpanStore* spans_;                    // null without the collector
    ProgressWatch watch_;                       // last: stopped before the rest goes
};

}  // namespace ordo::query
