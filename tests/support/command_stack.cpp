// The in-process command stack on a test database of its own (command role), and a count of
// the events stored.
#include "tests/support/command_stack.hpp"

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"

namespace ordo::testing {

CommandStack::CommandStack(platform::http::ServerOptions options, std::size_t pool_size,
                           command::Executor::Options executor)
    : pool_{{.url = db_.command_url(),
             .size = pool_size,
             .preparers = {&eventstore::EventStore::prepare}}},
      notifier_{db_.command_url(), platform::Logger::null_logger()},
      executor_{pool_, &notifier_, metrics_, platform::Logger::null_logger(), executor},
      service_{executor_, platform::Logger::null_logger()} {
    platform::http::Router router;
    service_.register_routes(router);
    options.port = 0;
    if (options.worker_threads < 16) options.worker_threads = 16;
    server_ = std::make_unique<platform::http::Server>(options, std::move(router),
                                                       platform::Logger::null_logger(), metrics_);
    server_->start();
}

CommandStack::~CommandStack() {
    server_->stop(std::chrono::seconds(5));
}

std::int64_t CommandStack::event_count() {
    return pool_.transact<pqxx::nontransaction>([](auto& tx) {
        return tx.exec1("SELECT count(*) FROM ordo.events")[0].template as<std::int64_t>();
    });
}

}  // namespace ordo::testing
