// The offline rebuild of a projection: replays the store into a shadow schema and swaps it in,
// refusing while a live projector owns the projection.

#include "projections/rebuild.hpp"
#include "projections/runtime.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include <pqxx/pqxx>

#include "platform/core/errors.hpp"
#include "platform/core/partition.hpp"
#include "platform/pg/advisory_locks.hpp"
#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"

namespace ordo::projections {
namespace {

using eventstore::Checkpoint;

// One rebuild of a projection at a time.
std::int64_t rebuild_lock_key(const std::string& projection) {
    return platform::pg::advisory_locks::rebuild(projection);
}

struct TableName {
    std::string schema;
    std::string table;
    std::string qualified() const { return schema + "." + table; }
};

TableName split_table(const std::string& qualified) {
    auto dot = qualified.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == qualified.size() ||
        qualified.find('.', dot + 1) != std::string::npos) {
        throw platform::InvalidInput("a projection's table must be schema-qualified: " + qualified);
    }
    return {qualified.substr(0, dot), qualified.substr(dot + 1)};
}

std::unique_ptr<Projection> take(std::vector<std::unique_ptr<Projection>> all,
                                 const std::string& name) {
    std::string known;
    for (auto& p : all) {
        if (p->name() == name) return std::move(p);
        known += (known.empty() ? "" : ", ") + p->name();
    }
    throw platform::InvalidInput("unknown projection '" + name + "'; known: " + known);
}

std::vector<std::string> live_owners(pqxx::transaction_base& txn, const std::string& name,
                                     const RebuildOptions& options) {
    // A slot's advisory lock names its owner's session; the checkpoint rows name the
    // instance that last wrote them, alive while its heartbeat is fresh.
    std::vector<std::string> owners;
    for (const auto& row : txn.exec_params(
             "SELECT 'session ' || l.pid || coalesce(' (' || nullif(a.application_name, '') || "
             "')', '') "
             "FROM pg_locks l LEFT JOIN pg_stat_activity a ON a.pid = l.pid "
             "WHERE l.locktype = 'advisory' AND l.granted AND l.classid = $1::bigint::oid "
             "AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname "
             "= current_database()) GROUP BY l.pid, a.application_name ORDER BY l.pid",
             slot_lock_key(name))) {
        owners.push_back(row[0].as<std::string>());
    }
    for (const auto& row : txn.exec_params(
             "SELECT DISTINCT 'instance ' || i.instance FROM ordo.projection_checkpoints c JOIN "
             "ordo.projector_instances i ON i.instance = c.owner WHERE c.projection = $1 AND "
             "i.heartbeat_at > now() - make_interval(secs => $2) ORDER BY 1",
             name, static_cast<double>(options.owner_ttl.count()))) {
        owners.push_back(row[0].as<std::string>());
    }
    return owners;
}

// Reads the replay's batches on a connection and thread of its own, up to two batches
// ahead of the writer, so that reading the store and writing the model overlap. Its
// read-only transactions take no xid: they do not hold the horizon back.
class BatchReader {
   public:
    // The reads are EventStore::read_range: bounded above by the horizon fixed at the
    // start, so every batch is an index range scan whatever the table's statistics say.
    // Events come upcast by `upcasters` (null: as stored).
    BatchReader(const std::string& url, Checkpoint horizon, std::vector<std::string> categories,
                std::size_t batch, const eventstore::Upcasters* upcasters)
        : conn_{url, "ordo-rebuild-reader"},
          horizon_{horizon},
          categories_{std::move(categories)},
          batch_{batch},
          upcasters_{upcasters} {
        eventstore::EventStore::prepare(conn_);
        thread_ = std::thread{[this] { run(); }};
    }
    ~BatchReader() {
        {
            std::lock_guard lock{mutex_};
            stop_ = true;
        }
        changed_.notify_all();
        thread_.join();
    }
    BatchReader(const BatchReader&) = delete;
    BatchReader& operator=(const BatchReader&) = delete;

    // The next batch in commit order; empty after the last. Rethrows a failed read.
    std::vector<eventstore::RecordedEvent> next() {
        std::unique_lock lock{mutex_};
        changed_.wait(lock, [&] { return !ready_.empty() || error_ || finished_; });
        if (!ready_.empty()) {
            auto events = std::move(ready_.front());
            ready_.pop_front();
            changed_.notify_all();
            return events;
        }
        if (error_) std::rethrow_exception(error_);
        return {};
    }

   private:
    static constexpr std::size_t kAhead = 2;

    void run() {
        try {
            Checkpoint at{};
            bool last = false;
            while (!last) {
                std::vector<eventstore::RecordedEvent> events;
                {
                    pqxx::read_transaction txn{conn_};
                    events =
                        eventstore::EventStore::read_range(txn, at, horizon_, categories_, batch_);
                }
                last = events.size() < batch_;
                if (!events.empty()) at = events.back().checkpoint();
                events = eventstore::upcast_all(upcasters_, std::move(events));
                std::unique_lock lock{mutex_};
                changed_.wait(lock, [&] { return ready_.size() < kAhead || stop_; });
                if (stop_) return;
                if (!events.empty()) ready_.push_back(std::move(events));
                finished_ = last;
                changed_.notify_all();
            }
        } catch (const std::exception&) {
            std::lock_guard lock{mutex_};
            error_ = std::current_exception();
            changed_.notify_all();
        }
    }

    platform::pg::Session conn_;
    Checkpoint horizon_;
    std::vector<std::string> categories_;
    std::size_t batch_;
    const eventstore::Upcasters* upcasters_;
    std::mutex mutex_;
    std::condition_variable changed_;
    std::deque<std::vector<eventstore::RecordedEvent>> ready_;
    bool finished_ = false;
    bool stop_ = false;
    std::exception_ptr error_;
    std::thread thread_;
};

std::string join(const std::vector<std::string>& items) {
    std::string out;
    for (const auto& i : items) out += (out.empty() ? "" : ", ") + i;
    return out;
}

class Rebuilder {
   public:
    Rebuilder(const std::string& name, const ProjectionFactory& factory,
              const RebuildOptions& options, const platform::Clock& clock,
              const platform::Logger& log,
              const std::function<void(const RebuildProgress&)>& on_progress)
        : options_{options},
          clock_{clock},
          log_{log},
          on_progress_{on_progress},
          shadow_schema_{shadow_schema_of(name)},
          live_{take(factory("read"), name)},
          shadow_{take(factory(shadow_schema_), name)},
          conn_{options.database_url, "ordo-rebuild"} {  // holds the rebuild lock
        validate(name);
        // Every name in the catalog output is then schema-qualified, which the index
        // definitions copied below rely on.
        pqxx::nontransaction setup{conn_};
        setup.exec("SET search_path TO ''");
        // The notices of DROP ... IF EXISTS and CASCADE say nothing an operator needs.
        setup.exec("SET client_min_messages TO warning");
        setup.commit();
        eventstore::EventStore::prepare(conn_);
    }

    RebuildReport run() {
        const auto started = clock_.steady_now();
        RebuildReport report;
        report.plan = plan();
        if (options_.dry_run) {
            report.total_time = elapsed(started);
            return report;
        }
        const auto covered = static_cast<int>(report.plan.checkpoints.size());
        if (covered > 0 && covered != options_.partitions && !options_.force) {
            throw platform::InvalidInput(
                "the checkpoints of '" + report.plan.projection + "' cover " +
                std::to_string(covered) + " partitions, not " +
                std::to_string(options_.partitions) +
                ": pass the projection runtime's partition count (ORDO_PARTITIONS), or --force "
                "to repartition");
        }
        lock_rebuild();
        if (wait_for_owners(report.plan)) {
            report.plan = plan();  // after a wait, from the store's present head
        }
        prepare_shadow();
        const auto replay_started = clock_.steady_now();
        report.bulk = options_.bulk;
        report.applied = replay(report.plan, report.bulk);
        report.replay_time = elapsed(replay_started);
        // Fresh statistics, so that the first queries on the new tables plan well.
        for (const auto& t : shadow_tables_) {
            pqxx::nontransaction analyze{conn_};
            analyze.exec("ANALYZE " + t);
        }
        swap(report.plan);
        report.swapped = true;
        report.total_time = elapsed(started);
        return report;
    }

   private:
    void validate(const std::string& name) {
        if (options_.partitions < 1 || options_.partitions > 1024) {
            throw platform::InvalidInput("partitions must be between 1 and 1024");
        }
        if (options_.batch < 1 || options_.batch > 1'000'000) {
            throw platform::InvalidInput("batch must be between 1 and 1000000 events");
        }
        if (options_.shards && options_.shards->partitions() != options_.partitions) {
            throw platform::InvalidInput(
                "the shard map has " + std::to_string(options_.shards->partitions()) +
                " partitions, the rebuild was given " + std::to_string(options_.partitions));
        }
        live_tables_ = live_->tables();
        shadow_tables_ = shadow_->tables();
        if (live_tables_.empty()) {
            throw platform::InvalidInput("projection '" + name +
                                         "' declares no tables: there is nothing to rebuild");
        }
        if (live_tables_.size() != shadow_tables_.size()) {
            throw platform::InvalidInput("projection '" + name +
                                         "' names other tables in the shadow schema");
        }
        for (std::size_t i = 0; i < live_tables_.size(); ++i) {
            auto live = split_table(live_tables_[i]);
            auto shadow = split_table(shadow_tables_[i]);
            if (live.table != shadow.table || shadow.schema != shadow_schema_) {
                throw platform::InvalidInput("projection '" + name + "' writes " +
                                             shadow_tables_[i] + " instead of " + shadow_schema_ +
                                             "." + live.table);
            }
        }
    }

    std::chrono::milliseconds elapsed(std::chrono::steady_clock::time_point since) const {
        return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.steady_now() - since);
    }

    RebuildPlan plan() {
        pqxx::read_transaction txn{conn_};
        RebuildPlan plan;
        plan.projection = live_->name();
        plan.tables = live_tables_;
        plan.shadow_schema = shadow_schema_;
        for (const auto& t : live_tables_) {
            if (txn.exec_params1("SELECT to_regclass($1) IS NULL", t)[0].as<bool>()) {
                throw platform::InvalidInput("table " + t + " does not exist; run the migrations");
            }
        }
        for (const auto& t : live_tables_) {
            // A view on a table would stop the swap from dropping it: say so before any work.
            auto views = txn.exec_params(
                "SELECT DISTINCT v.oid::regclass::text FROM pg_catalog.pg_depend d JOIN "
                "pg_catalog.pg_rewrite r ON r.oid = d.objid JOIN pg_catalog.pg_class v ON v.oid "
                "= r.ev_class WHERE d.classid = 'pg_catalog.pg_rewrite'::regclass AND "
                "d.refclassid = 'pg_catalog.pg_class'::regclass AND d.refobjid = $1::regclass "
                "AND v.oid <> d.refobjid ORDER BY 1",
                t);
            if (!views.empty()) {
                throw platform::InvalidInput("table " + t + " cannot be swapped: the view " +
                                             views[0][0].as<std::string>() +
                                             " depends on it; drop or change the view first");
            }
        }
        plan.leftover_shadow =
            txn.exec_params1("SELECT count(*) FROM pg_namespace WHERE nspname = $1",
                             shadow_schema_)[0]
                .as<int>() > 0;
        if (options_.shards) {
            // A partition half moved has rows on two shards, or checkpoints about to be
            // rebased: the rebuild waits for the move to end.
            auto moving = txn.exec(
                "SELECT partition FROM ordo.partition_moves "
                "WHERE step NOT IN ('done', 'rolled_back') ORDER BY partition LIMIT 1");
            if (!moving.empty()) {
                throw platform::InvalidInput(
                    "partition " + moving[0][0].as<std::string>() +
                    " is being moved between shards: finish or roll back the move "
                    "(ordo shards move), then rebuild");
            }
            // Each shard's own horizon and count, on a connection to it of the same role.
            for (const auto& shard : options_.shards->shards()) {
                platform::pg::Session conn{eventstore::shard_url(options_.database_url, shard),
                                           "ordo-rebuild"};
                eventstore::EventStore::prepare(conn);
                pqxx::read_transaction shard_txn{conn};
                const auto head = eventstore::EventStore::head(shard_txn).value_or(Checkpoint{});
                plan.shard_horizons[shard.id] = head;
                plan.events +=
                    eventstore::EventStore::count_until(shard_txn, head, live_->categories());
            }
        } else {
            plan.horizon = eventstore::EventStore::head(txn).value_or(Checkpoint{});
            plan.events =
                eventstore::EventStore::count_until(txn, plan.horizon, live_->categories());
        }
        for (const auto& row :
             txn.exec_params("SELECT partition, transaction_id::text AS txid, global_position FROM "
                             "ordo.projection_checkpoints WHERE projection = $1 ORDER BY partition",
                             plan.projection)) {
            plan.checkpoints.push_back(
                {row[0].as<int>(), Checkpoint{eventstore::transaction_id_from_xid8(row[1].c_str()),
                                              row[2].as<std::int64_t>()}});
        }
        plan.live_owners = live_owners(txn, plan.projection, options_);
        return plan;
    }

    void lock_rebuild() {
        pqxx::nontransaction txn{conn_};
        if (!txn.exec_params1("SELECT pg_try_advisory_lock($1)", rebuild_lock_key(live_->name()))[0]
                 .as<bool>()) {
            throw RebuildRefused("another rebuild of '" + live_->name() +
                                 "' is running (or the session of one that was killed has not "
                                 "ended yet: it ends with the statement it was running); retry "
                                 "once it has");
        }
    }

    // True when it waited for owners to go.
    bool wait_for_owners(RebuildPlan& plan) {
        if (options_.force) {
            if (!plan.live_owners.empty()) {
                log_.warn(
                    "rebuilding while a live projector owns the projection; it continues "
                    "from the rebuilt checkpoints after the swap",
                    {{"projection", plan.projection}, {"owners", join(plan.live_owners)}});
            }
            return false;
        }
        const auto deadline = clock_.steady_now() + options_.wait_timeout;
        bool announced = false;
        while (!plan.live_owners.empty()) {
            if (!options_.wait) {
                throw RebuildRefused(
                    "projection '" + plan.projection + "' is owned by a live projector (" +
                    join(plan.live_owners) +
                    "); stop its projectors, or pass --wait to wait for them to go, or "
                    "--force to rebuild anyway");
            }
            if (options_.wait_timeout.count() > 0 && clock_.steady_now() > deadline) {
                throw RebuildRefused("projection '" + plan.projection +
                                     "' is still owned by a live projector (" +
                                     join(plan.live_owners) + ") after waiting");
            }
            if (!announced) {
                log_.info("waiting until no live projector owns the projection",
                          {{"projection", plan.projection}, {"owners", join(plan.live_owners)}});
                announced = true;
            }
            std::this_thread::sleep_for(std::chrono::milliseconds(500));
            pqxx::read_transaction txn{conn_};
            plan.live_owners = live_owners(txn, plan.projection, options_);
        }
        return announced;
    }

    // A fresh shadow schema with empty copies of the live tables: columns, defaults,
    // checks, the same constraint and index names, the same grants. Indexes exist before
    // the load, so that no transaction of the rebuild runs long.
    void prepare_shadow() {
        pqxx::work txn{conn_};
        const auto schema = txn.quote_name(shadow_schema_);
        txn.exec("DROP SCHEMA IF EXISTS " + schema + " CASCADE");
        txn.exec("CREATE SCHEMA " + schema);
        for (std::size_t i = 0; i < live_tables_.size(); ++i) {
            const auto live = split_table(live_tables_[i]);
            const auto live_q = txn.quote_name(live.schema) + "." + txn.quote_name(live.table);
            const auto shadow_q = schema + "." + txn.quote_name(live.table);
            txn.exec("CREATE TABLE " + shadow_q + " (LIKE " + live_q +
                     " INCLUDING ALL EXCLUDING INDEXES)");
            for (const auto& c : txn.exec_params(
                     "SELECT conname, pg_get_constraintdef(oid) FROM pg_catalog.pg_constraint "
                     "WHERE conrelid = $1::regclass AND contype IN ('p', 'u', 'x') ORDER BY "
                     "conname",
                     live_q)) {
                txn.exec("ALTER TABLE " + shadow_q + " ADD CONSTRAINT " +
                         txn.quote_name(c[0].as<std::string>()) + " " + c[1].as<std::string>());
            }
            // As the catalog spells it (quoted only where needed), to find it in the index
            // definitions.
            const auto on_live =
                " ON " +
                txn.exec_params1("SELECT $1::regclass::text", live_q)[0].as<std::string>() +
                " USING ";
            for (const auto& ix : txn.exec_params(
                     "SELECT pg_get_indexdef(i.indexrelid) FROM pg_catalog.pg_index i WHERE "
                     "i.indrelid = $1::regclass AND NOT EXISTS (SELECT 1 FROM "
                     "pg_catalog.pg_constraint c WHERE c.conindid = i.indexrelid AND c.conrelid "
                     "= i.indrelid AND c.contype IN ('p', 'u', 'x')) ORDER BY 1",
                     live_q)) {
                auto ddl = ix[0].as<std::string>();
                auto at = ddl.find(on_live);
                if (at == std::string::npos) {
                    throw std::runtime_error("cannot copy an index of " + live_q + ": " + ddl);
                }
                ddl.replace(at, on_live.size(), " ON " + shadow_q + " USING ");
                txn.exec(ddl);
            }
            for (const auto& g : txn.exec_params(
                     "SELECT a.privilege_type, coalesce(quote_ident(r.rolname), 'PUBLIC'), "
                     "a.is_grantable FROM pg_catalog.pg_class c CROSS JOIN LATERAL "
                     "aclexplode(c.relacl) a LEFT JOIN pg_catalog.pg_roles r ON r.oid = "
                     "a.grantee WHERE c.oid = $1::regclass AND a.grantee <> c.relowner ORDER BY "
                     "2, 1",
                     live_q)) {
                static const std::set<std::string> kPrivileges{
                    "SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER"};
                const auto privilege = g[0].as<std::string>();
                if (!kPrivileges.contains(privilege)) {
                    throw std::runtime_error("unexpected privilege " + privilege + " on " + live_q);
                }
                txn.exec("GRANT " + privilege + " ON " + shadow_q + " TO " +
                         g[1].as<std::string>() + (g[2].as<bool>() ? " WITH GRANT OPTION" : ""));
            }
        }
        txn.commit();
    }

    std::int64_t replay(const RebuildPlan& plan, bool bulk) {
        const auto categories = live_->categories();
        std::int64_t done = 0;
        const auto started = clock_.steady_now();
        auto last_report = started;
        report_progress(done, plan.events, started, false);
        // Events above the horizon committed after the start: the live runtime takes them
        // from the checkpoints the swap sets. Over shards, one shard after another: a read
        // model folds per stream, and a stream's events are all on one shard, in its order.
        std::vector<std::pair<std::string, Checkpoint>> sources;
        if (options_.shards) {
            for (const auto& shard : options_.shards->shards()) {
                sources.emplace_back(eventstore::shard_url(options_.database_url, shard),
                                     plan.shard_horizons.at(shard.id));
            }
        } else {
            sources.emplace_back(options_.database_url, plan.horizon);
        }
        for (const auto& [url, horizon] : sources) {
            done += replay_from(url, horizon, categories, bulk, plan.events, done, started,
                                last_report);
        }
        report_progress(done, std::max(done, plan.events), started, true);
        return done;
    }

    // Replays the events of the store at `url` up to `horizon` into the shadow tables;
    // returns how many. `done` before it, for the progress reports.
    std::int64_t replay_from(const std::string& url, Checkpoint horizon,
                             const std::vector<std::string>& categories, bool bulk,
                             std::int64_t total, std::int64_t done,
                             std::chrono::steady_clock::time_point started,
                             std::chrono::steady_clock::time_point& last_report) {
        std::int64_t applied = 0;
        BatchReader reader{url, horizon, categories, options_.batch, options_.upcasters};
        for (;;) {
            auto events = reader.next();
            if (events.empty()) break;
            pqxx::work txn{conn_};
            SqlReadModelTxn target{txn};
            if (bulk) {
                EventRefs refs;
                refs.reserve(events.size());
                for (const auto& e : events) refs.push_back(&e);
                shadow_->apply_batch(target, refs);
            } else {
                for (const auto& e : events) shadow_->apply(target, e);
            }
            txn.commit();
            for (auto& change : target.take_changes()) change();
            for (const auto& e : events) {
                last_event_at_[platform::partition_of(e.stream_id, options_.partitions)] =
                    e.recorded_at;
            }
            applied += static_cast<std::int64_t>(events.size());
            if (clock_.steady_now() - last_report >= std::chrono::milliseconds(200)) {
                report_progress(done + applied, total, started, false);
                last_report = clock_.steady_now();
            }
        }
        return applied;
    }

    void report_progress(std::int64_t done, std::int64_t total,
                         std::chrono::steady_clock::time_point started, bool finished) {
        if (!on_progress_) return;
        RebuildProgress p{.done = done, .total = total, .finished = finished};
        const double seconds = std::chrono::duration<double>(clock_.steady_now() - started).count();
        if (seconds > 0 && done > 0) {
            p.events_per_second = static_cast<double>(done) / seconds;
            p.remaining = std::chrono::seconds(static_cast<std::int64_t>(
                static_cast<double>(std::max<std::int64_t>(total - done, 0)) /
                p.events_per_second));
        }
        on_progress_(p);
    }

    // One transaction: the checkpoint rows locked (as the runtime locks them before a
    // batch), the live tables dropped, the new ones moved into their place, the checkpoints
    // set to the horizon. A reader waiting on the old tables holds the swap back, so the
    // swap gives up after lock_timeout and tries again.
    void swap(const RebuildPlan& plan) {
        for (int attempt = 1;; ++attempt) {
            try {
                pqxx::work txn{conn_};
                txn.exec("SET LOCAL lock_timeout = " +
                         std::to_string(options_.lock_timeout.count()));
                txn.exec_params(
                    "SELECT 1 FROM ordo.projection_checkpoints WHERE projection = $1 FOR UPDATE",
                    plan.projection);
                for (const auto& qualified : live_tables_) {
                    const auto live = split_table(qualified);
                    txn.exec("DROP TABLE " + txn.quote_name(live.schema) + "." +
                             txn.quote_name(live.table));
                    txn.exec("ALTER TABLE " + txn.quote_name(shadow_schema_) + "." +
                             txn.quote_name(live.table) + " SET SCHEMA " +
                             txn.quote_name(live.schema));
                }
                txn.exec("DROP SCHEMA " + txn.quote_name(shadow_schema_));
                for (int p = 0; p < options_.partitions; ++p) {
                    auto it = last_event_at_.find(p);
                    // Over shards, the checkpoint names the shard its horizon is of.
                    const auto shard = options_.shards
                                           ? std::to_string(options_.shards->shard_of_partition(p))
                                           : std::string{};
                    const auto horizon =
                        options_.shards
                            ? plan.shard_horizons.at(options_.shards->shard_of_partition(p))
                            : plan.horizon;
                    txn.exec_params(
                        "INSERT INTO ordo.projection_checkpoints AS c (projection, partition, "
                        "transaction_id, global_position, last_event_at, owner, updated_at, "
                        "shard) VALUES ($1, $2, $3::text::xid8, $4, $5::timestamptz, 'rebuild', "
                        "now(), $6::integer) "
                        "ON CONFLICT (projection, partition) DO UPDATE SET transaction_id = "
                        "EXCLUDED.transaction_id, global_position = EXCLUDED.global_position, "
                        "last_event_at = EXCLUDED.last_event_at, owner = EXCLUDED.owner, "
                        "updated_at = EXCLUDED.updated_at, shard = EXCLUDED.shard",
                        plan.projection, p, std::to_string(horizon.transaction_id),
                        horizon.position, it == last_event_at_.end() ? nullptr : it->second.c_str(),
                        shard.empty() ? nullptr : shard.c_str());
                }
                // Rows of partitions the runtime no longer has (P changed) would be stale.
                txn.exec_params(
                    "DELETE FROM ordo.projection_checkpoints WHERE projection = $1 AND "
                    "partition >= $2",
                    plan.projection, options_.partitions);
                txn.commit();
                return;
            } catch (const pqxx::sql_error&) {
                const auto error = std::current_exception();
                // Lock timeouts, and deadlocks with a forced-over projector that touched a
                // table before its checkpoint row, are worth another attempt.
                const auto state = platform::pg::sqlstate_of(error);
                if ((state != "55P03" && state != "40P01") || attempt >= options_.swap_attempts) {
                    throw;
                }
                log_.warn(
                    "the swap could not take its locks; retrying",
                    {{"projection", plan.projection}, {"attempt", attempt}, {"sqlstate", state}});
            }
        }
    }

    const RebuildOptions& options_;
    const platform::Clock& clock_;
    const platform::Logger& log_;
    const std::function<void(const RebuildProgress&)>& on_progress_;
    std::string shadow_schema_;
    std::unique_ptr<Projection> live_;
    std::unique_ptr<Projection> shadow_;
    std::vector<std::string> live_tables_;
    std::vector<std::string> shadow_tables_;
    platform::pg::Session conn_;
    std::map<int, std::string> last_event_at_;  // per partition, of the events applied
};

}  // namespace

std::string shadow_schema_of(const std::string& projection) {
    return "rebuild_" + projection;
}

RebuildReport rebuild(const std::string& projection, const ProjectionFactory& projections,
                      const RebuildOptions& options, const platform::Clock& clock,
                      const platform::Logger& log,
                      const std::function<void(const RebuildProgress&)>& on_progress) {
    return Rebuilder{projection, projections, options, clock, log, on_progress}.run();
}

}  // namespace ordo::projections
