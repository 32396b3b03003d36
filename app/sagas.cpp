// `ordo serve sagas`: the saga intake and runner in one process, the runner sending its commands
// through an in-process command service.

#include <thread>

#include <pqxx/pqxx>

#include "app/host.hpp"
#include "app/subcommands.hpp"
#include "app/upcasters.hpp"
#include "command/executor.hpp"
#include "command/service.hpp"
#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/pg_shards.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/nats.hpp"
#include "platform/pg/pg.hpp"
#include "platform/service/service_routes.hpp"
#include "projections/runtime.hpp"
#include "projections/traced.hpp"
#include "sagas/intake.hpp"
#include "sagas/pg_schedule.hpp"
#include "sagas/runner.hpp"

namespace ordo::app {
namespace {

// The runner's bus in the sagas service: this process's command service, each command
// carrying the saga's trace and correlation.
class InProcessBus final : public sagas::CommandBus {
   public:
    explicit InProcessBus(command::CommandService& service) : service_{service} {}

    domain::CommandOutcome send(const std::string& command_id,
                                const domain::InternalCommand& command,
                                const eventstore::Metadata& cause) override {
        command::CommandContext context;
        // The command continues the saga's trace as a new span: a child of the span that
        // caused it, or, when the cause names a trace but no span, a span of its own in that
        // trace.
        if (auto parent = eventstore::trace_of(cause)) {
            context.trace = platform::child_span(*parent);
        } else {
            context.trace = platform::new_trace();
            if (auto trace_id = platform::parse_trace_id(cause.trace_id)) {
                context.trace.trace_id = *trace_id;
            }
        }
        context.correlation_id = cause.correlation_id;
        context.causation_id = cause.causation_id;
        context.actor = "saga";
        return service_.send(command_id, command, context);
    }

   private:
    command::CommandService& service_;
};

}  // namespace

int run_sagas(const SagasOptions& given, const platform::Logger& log) {
    auto options = given;
    auto mode = sagas::parse_mode(options.mode);
    if (!mode) {
        log.error("ORDO_SAGA_MODE must be orchestration or choreography", {{"got", options.mode}});
        return 2;
    }
    StopSignals signals;
    platform::metrics::Registry registry;
    auto spans = span_exporter("ordo-sagas", log, registry);
    // A command stuck behind a row lock fails after lock_timeout and is retried by the
    // saga's policy, so a deadline can pass while a step is blocked.
    const int lock_timeout_ms = options.lock_timeout_ms;
    auto bounded_waits = [lock_timeout_ms](pqxx::connection& c) {
        pqxx::nontransaction tx{c};
        tx.exec("SET lock_timeout = " + std::to_string(lock_timeout_ms));
    };
    platform::pg::Pool pool{{.url = options.database_url,
                             .size = options.pool_size,
                             .name = "sagas",
                             .preparers = {bounded_waits, &eventstore::EventStore::prepare}}};
    pool.register_metrics(registry);
    platform::nats::Connection nats{options.nats, log.with_component("nats"), &registry};
    // The shard map first: over a sharded store, the process streams and the aggregates the
    // steps command live on their shards, and this database (the read database) keeps the
    // schedule and the intake's checkpoints.
    auto map = eventstore::ShardMap::single(eventstore::kDefaultPartitions);  // the store's, below
    if (auto rc = agree_on_partitions(&signals, options.database_url, options.partitions,
                                      PartitionRole::record, log, &map)) {
        return *rc;
    }
    eventstore::AppendNotifier notifier{options.database_url, log.with_component("notifier")};
    // A step's command waits for its stream's turn and a connection for at most a third of
    // the runner's lease, so the process stays this runner's; past that the step is not
    // sent, which costs it no attempt.
    command::Executor::Options executor_options;
    executor_options.start_timeout = std::chrono::milliseconds(3000);
    // Aggregates, process streams and the intake's feed all read events in their current shape.
    const auto upcasters = event_upcasters();
    executor_options.upcasters = &upcasters;
    // The runner's process streams: this database's store, or each on its shard. The
    // runner's appends wake whoever waits for appends, as the command side's do.
    std::unique_ptr<eventstore::EventStore> store;
    std::unique_ptr<eventstore::OneShard> one_shard;
    std::unique_ptr<eventstore::PgShards> sharded;
    std::unique_ptr<command::Executor> executor;
    if (map.version() == 0) {
        executor = std::make_unique<command::Executor>(
            pool, &notifier, registry, log.with_component("command"), executor_options);
        store = std::make_unique<eventstore::EventStore>(pool, &notifier, std::nullopt, &upcasters);
        one_shard = std::make_unique<eventstore::OneShard>(*store);
    } else {
        sharded = std::make_unique<eventstore::PgShards>(
            map,
            eventstore::PgShardsOptions{
                .url = options.database_url,
                .pool = {.size = options.pool_size, .name = "sagas", .preparers = {bounded_waits}},
                .upcasters = &upcasters},
            log);
        sharded->register_metrics(registry);
        executor = std::make_unique<command::Executor>(
            *sharded, registry, log.with_component("command"), executor_options);
    }
    eventstore::Shards& shards = sharded ? static_cast<eventstore::Shards&>(*sharded) : *one_shard;
    command::CommandService service{*executor, log.with_component("command")};
    InProcessBus bus{service};
    platform::SystemClock clock;

    // The intake's appends wake idle runner workers; so do the command side's.
    eventstore::AppendListener appends{options.database_url, log.with_component("listener")};
    sagas::RunnerOptions runner_options;
    runner_options.appends = &appends;
    runner_options.workers = options.workers;
    runner_options.policy.step_timeout_ms = options.step_timeout_ms;
    runner_options.policy.fulfillment_timeout_ms = options.fulfillment_timeout_ms;
    sagas::PgSchedule schedule{pool};
    sagas::Runner runner{runner_options, shards, schedule, bus, clock, log.with_component("saga"),
                         registry};

    std::vector<std::unique_ptr<projections::Projection>> feeds;
    feeds.push_back(sagas::intake(*mode, sharded.get()));
    feeds = projections::traced(std::move(feeds), spans.get(), log.with_component("saga-intake"));
    projections::Runtime intake{
        {.database_url = options.database_url,
         .partitions = options.partitions,
         .instance = instance_name() + "/sagas",
         .group = "sagas",
         .nats = options.nats,
         .stream = options.stream,
         .subject_prefix = options.subject_prefix,
         .live_buffer_bytes = static_cast<std::size_t>(options.live_buffer_mib) << 20,
         .upcasters = &upcasters,
         .shards = sharded ? std::optional{map} : std::nullopt},
        std::move(feeds),
        log.with_component("saga-intake"),
        registry};
    // The intake appends saga events: whoever waits for appends hears of them once a batch
    // has committed.
    intake.on_batch_committed([&notifier] { notifier.signal(); });

    // Sagas still running (one per order), and how late the most overdue one is: a saga due
    // but not taken up means no runner is making progress.
    schedule.register_metrics(registry);

    platform::http::Router router;
    platform::add_service_routes(router, registry, pool, nats);
    platform::http::ServerOptions server_options;
    server_options.worker_threads = 2;
    server_options.component = "sagas";
    server_options.spans = spans.get();
    auto server = start_server(signals, options.address, options.tls, server_options,
                               std::move(router), log, registry);
    if (!server) return 1;
    log.info("saga runner running",
             {{"mode", options.mode}, {"workers", options.workers}, {"metrics", options.address}});

    return run_until_stopped(
        signals, *server,
        {[&](const auto& stop) { intake.run(stop); }, [&](const auto& stop) { runner.run(stop); }},
        log);
}

}  // namespace ordo::app
