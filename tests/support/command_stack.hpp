// A test fixture: the command service wired as `ordo serve command` wires it, in-process.
#pragma once

#include <memory>

#include "command/executor.hpp"
#include "command/service.hpp"
#include "eventstore/append_notifier.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http_server.hpp"
#include "platform/pg/pg.hpp"
#include "tests/support/http_client.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {

// The command service wired as `ordo serve command` wires it, in-process, on an ephemeral
// port, over a database of its own.
class CommandStack {
   public:
    // `pool_size` and `executor` as `ordo serve command` takes them from its configuration.
    explicit CommandStack(platform::http::ServerOptions options = {}, std::size_t pool_size = 16,
                          command::Executor::Options executor = {});
    ~CommandStack();

    std::uint16_t port() const { return server_->port(); }
    HttpClient client() const { return HttpClient{"127.0.0.1", port()}; }
    TestDatabase& database() { return db_; }
    platform::pg::Pool& pool() { return pool_; }
    command::CommandService& service() { return service_; }
    command::Executor& executor() { return executor_; }
    platform::metrics::Registry& metrics() { return metrics_; }

    // Number of events in the store; for checking that bad requests append nothing.
    std::int64_t event_count();

   private:
    TestDatabase db_;
    platform::metrics::Registry metrics_;
    platform::pg::Pool pool_;
    eventstore::AppendNotifier notifier_;
    command::Executor executor_;
    command::CommandService service_;
    std::unique_ptr<platform::http::Server> server_;
};

}  // namespace ordo::testing
