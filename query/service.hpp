#pragma once

#include <atomic>
#include <cstddef>

#include <chrono>
#include <functional>
#include <optional>
#include <string>

#include <pqxx/connection>

#include "eventstore/event_store.hpp"
#include "platform/http.hpp"
#include "platform/log.hpp"

namespace ordo::platform::pg {
class Pool;
}

namespace ordo::query {

// The Query API: read models over HTTP, on the reader role (it sees only schema `read`).
//
// Single resources carry ETag "<version>" and answer If-None-Match with 304. A request with
// X-Consistency-Token waits, up to ?wait_ms=, until the projections the route reads have
// passed that position, then answers from the read model (read-your-writes); otherwise 503
// projection_lagging. `partitions` must be the projectors' partition count, or a single
// resource's wait looks at the wrong partition.
//
// Thread-safe: handlers hold no state but the pool and a count of waiting requests. A
// waiting request keeps its worker thread but no database connection between polls; at most
// `max_waiting` requests wait at once, and a request that would have to wait beyond that is
// answered 503 unavailable with Retry-After at once, so that waits never take every worker
// from the reads that need none. (Give the server more workers than `max_waiting`.)
class QueryService {
   public:
    QueryService(platform::pg::Pool& pool, int partitions, platform::Logger log,
                 std::size_t max_waiting = 48);

    // Requests waiting for a consistency token now.
    std::size_t waiting() const { return waiting_.load(); }

    // Registers this class's prepared statements; add it to the pool's preparers.
    static void prepare(pqxx::connection& conn);

    void register_routes(platform::http::Router& router);

    // Which projection a route reads, and which of its partitions: one (a single resource's
    // stream) or all of them (lists, traces).
    struct Reads {
        std::string projection;
        std::optional<int> partition;  // nullopt: every partition
    };

   private:
    platform::http::Response get_order(platform::http::Request& request);
    platform::http::Response list_orders(platform::http::Request& request);
    platform::http::Response get_inventory(platform::http::Request& request);
    platform::http::Response get_account(platform::http::Request& request);
    platform::http::Response get_saga(platform::http::Request& request);
    platform::http::Response get_trace(platform::http::Request& request);
    platform::http::Response list_projections(platform::http::Request& request);
    platform::http::Response list_dead_letters(platform::http::Request& request);

    // Honours X-Consistency-Token for `reads`, then answers with `answer`; maps database
    // failures to 503 unavailable.
    platform::http::Response serve(const platform::http::Request& request,
                                   const std::optional<eventstore::Checkpoint>& token,
                                   std::chrono::milliseconds wait, const Reads& reads,
                                   const std::function<platform::http::Response()>& answer);

    // Polls read.projection_progress until `reads` has passed `token` or `deadline` comes.
    bool wait_until_passed(const Reads& reads, eventstore::Checkpoint token,
                           std::chrono::steady_clock::time_point deadline);
    bool has_passed(const Reads& reads, eventstore::Checkpoint token);

    platform::pg::Pool& pool_;
    int partitions_;
    platform::Logger log_;
    const std::size_t max_waiting_;
    std::atomic<std::size_t> waiting_{0};
};

}  // namespace ordo::query
