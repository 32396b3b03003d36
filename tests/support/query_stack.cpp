// The in-process query stack: the query and dead-letter servers over one test database, and
// projection checkpoints written directly.
#include "tests/support/query_stack.hpp"

#include <pqxx/pqxx>

#include "tests/support/upcasters.hpp"

#include "projections/dead_letter_routes.hpp"

namespace ordo::testing {

QueryStack::QueryStack(platform::http::ServerOptions options, std::optional<std::string> reader_url,
                       std::size_t max_waiting, query::Subscriptions::Options subscriptions)
    : reader_{{.url = reader_url.value_or(db_.query_url()),
               .size = 16,
               .name = "query",
               .preparers = {&query::QueryService::prepare,
                             &eventstore::EventStore::prepare_reader}}},
      command_{{.url = db_.command_url(), .size = 4, .name = "command"}},
      fixtures_{{.url = db_.migrator_url(), .size = 2, .name = "test"}},
      service_{reader_, kPartitions, platform::Logger::null_logger(), max_waiting},
      sources_{{{0, &reader_, reader_url.value_or(db_.query_url())}}},
      subscriptions_{sources_, &upcasters(), subscriptions, platform::Logger::null_logger(),
                     &metrics_},
      events_{sources_, subscriptions_, &upcasters(), platform::Logger::null_logger()} {
    platform::http::Router admin;
    projections::add_dead_letter_routes(admin, command_, platform::Logger::null_logger());
    auto admin_options = options;
    admin_options.port = 0;
    admin_options.component = "command";
    admin_server_ = std::make_unique<platform::http::Server>(
        admin_options, std::move(admin), platform::Logger::null_logger(), metrics_);
    admin_server_->start();

    platform::http::Router router;
    service_.register_routes(router);
    events_.register_routes(router);
    projections::add_dead_letter_redirects(
        router, "http://127.0.0.1:" + std::to_string(admin_server_->port()));
    options.port = 0;
    server_ = std::make_unique<platform::http::Server>(options, std::move(router),
                                                       platform::Logger::null_logger(), metrics_);
    server_->start();
}

QueryStack::~QueryStack() {
    subscriptions_.stop();
    server_->stop(std::chrono::seconds(5));
    admin_server_->stop(std::chrono::seconds(5));
}

void QueryStack::set_checkpoint(const std::string& projection, int partition,
                                eventstore::Checkpoint at) {
    fixtures_.transact([&](auto& tx) {
        tx.exec_params(
            "INSERT INTO ordo.projection_checkpoints (projection, partition, transaction_id, "
            "global_position, updated_at) VALUES ($1, $2, $3::text::xid8, $4, now()) "
            "ON CONFLICT (projection, partition) DO UPDATE SET transaction_id = "
            "excluded.transaction_id, global_position = excluded.global_position, updated_at = "
            "now()",
            projection, partition, std::to_string(at.transaction_id), at.position);
    });
}

void QueryStack::set_checkpoints(const std::string& projection, eventstore::Checkpoint at) {
    for (int p = 0; p < kPartitions; ++p) set_checkpoint(projection, p, at);
}

}  // namespace ordo::testing
