// A test fixture: the query service wired as `ordo serve query` wires it, in-process, with the
// dead-letter routes beside it and a pool for the test's own rows.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include "eventstore/event_store.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http_server.hpp"
#include "platform/pg/pg.hpp"
#include "query/events_api.hpp"
#include "query/service.hpp"
#include "query/shard_sources.hpp"
#include "query/subscriptions.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {

// The query service wired as `ordo serve query` wires it, in-process, on an ephemeral port,
// over a database of its own: the service on the ordo_query role, the Command API's
// dead-letter routes on the ordo_command role, and a pool on the owner role for the test to
// put read-model rows and projection checkpoints in place directly.
class QueryStack {
   public:
    static constexpr int kPartitions = 4;

    // `reader_url` replaces the test database's query-role URL (e.g. one nothing listens on).
    explicit QueryStack(platform::http::ServerOptions options = {},
                        std::optional<std::string> reader_url = std::nullopt,
                        std::size_t max_waiting = 1024,
                        query::Subscriptions::Options subscriptions = {});
    ~QueryStack();

    std::uint16_t port() const { return server_->port(); }
    HttpClient client() const { return HttpClient{"127.0.0.1", port()}; }
    // The Command API's dead-letter routes over the same database (command role), where the
    // query service's old routes redirect.
    std::uint16_t admin_port() const { return admin_server_->port(); }
    HttpClient admin_client() const { return HttpClient{"127.0.0.1", admin_port()}; }
    TestDatabase& database() { return db_; }
    int partitions() const { return kPartitions; }
    platform::pg::Pool& reader() { return reader_; }      // the service's pool
    platform::pg::Pool& fixtures() { return fixtures_; }  // for the test's own rows
    query::QueryService& service() { return service_; }
    query::Subscriptions& subscriptions() { return subscriptions_; }
    platform::metrics::Registry& metrics() { return metrics_; }

    // Upserts the checkpoint of one partition of a projection.
    void set_checkpoint(const std::string& projection, int partition, eventstore::Checkpoint at);
    // Every partition 0..P-1 of a projection at `at`.
    void set_checkpoints(const std::string& projection, eventstore::Checkpoint at);

   private:
    TestDatabase db_;
    platform::metrics::Registry metrics_;
    platform::pg::Pool reader_;
    platform::pg::Pool command_;
    platform::pg::Pool fixtures_;
    query::QueryService service_;
    query::ShardSources sources_;
    query::Subscriptions subscriptions_;
    query::EventsApi events_;
    std::unique_ptr<platform::http::Server> admin_server_;
    std::unique_ptr<platform::http::Server> server_;
};

}  // namespace ordo::testing
