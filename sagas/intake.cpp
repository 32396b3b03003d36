// The saga side's projections: the intake that feeds process streams from other contexts' events,
// and the saga view of the Query API (read.sagas).

#include "sagas/intake.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <list>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <unordered_map>
#include <utility>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/errors.hpp"
#include "projections/sql_rows.hpp"
#include "sagas/pg_schedule.hpp"
#include "sagas/process_stream.hpp"

namespace ordo::sagas {
namespace {

std::uint64_t fnv1a64(const std::string& text, std::uint64_t seed) {
    std::uint64_t h = seed;
    for (unsigned char c : text) {
        h ^= c;
        h *= 0x100000001b3ULL;
    }
    return h;
}

// "2026-11-26T17:16:32.004123Z" (the store's recorded_at) in milliseconds since the epoch.
std::int64_t epoch_ms(const std::string& recorded_at) {
    std::tm tm{};
    int micros = 0;
    if (std::sscanf(recorded_at.c_str(), "%4d-%2d-%2dT%2d:%2d:%2d.%6d", &tm.tm_year, &tm.tm_mon,
                    &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &micros) < 6) {
        throw platform::InvalidInput("unreadable recorded_at '" + recorded_at + "'");
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return static_cast<std::int64_t>(timegm(&tm)) * 1000 + micros / 1000;
}

// The mode an order's processes run in, from the streams it has: nullopt for events that
// are not an order's, and for an order without processes.
// `version(stream)` is a process stream's version (0: none).
template <class Version>
std::optional<Mode> running_mode(const eventstore::RecordedEvent& e, Version&& version) {
    if (e.category != "order" || !e.payload.contains("order_id") ||
        !e.payload["order_id"].is_string()) {
        return std::nullopt;
    }
    const auto order_id = e.payload["order_id"].get<std::string>();
    if (version(stream_of(ProcessKind::kFulfillment, order_id)) > 0) return Mode::kOrchestration;
    if (version(stream_of(ProcessKind::kOrders, order_id)) > 0) return Mode::kChoreography;
    return std::nullopt;
}

// One intake whatever the mode, with one checkpoint: switching the mode neither replays
// the history into the other mode's processes nor strands the orders in flight.
class Intake final : public projections::Projection {
   public:
    Intake(Mode placing, eventstore::Shards* shards) : placing_{placing}, shards_{shards} {}

    std::string name() const override { return "sagas.intake"; }

    std::vector<std::string> categories() const override {
        return {"order", std::string{category(ProcessKind::kInventory)},
                std::string{category(ProcessKind::kPayments)}};
    }

    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& e) override {
        apply_batch(target, {&e});
    }

    // Each event's deliveries appended in turn, then every process they went to marked due
    // in one statement. Over shards, the batch's deliveries are appended per shard in one
    // transaction each, in the order the events gave them, before the checkpoint commits:
    // a batch costs a transaction per shard it touches, not one per delivery, and a repeat
    // after a crash finds them there by their ids.
    void apply_batch(projections::ReadModelTxn& target,
                     const projections::EventRefs& events) override {
        auto& txn = target.sql();
        std::vector<Append> appends;
        if (!shards_) {
            eventstore::PgSession local{txn};
            for (const auto* e : events) {
                auto version = [&](const std::string& stream) {
                    return local.stream_version(stream);
                };
                for (auto& append : deliveries(*e, version)) {
                    local.append(append.stream, eventstore::ExpectedVersion::any(), append.events);
                    appends.push_back(std::move(append));
                }
            }
        } else {
            // A stream this batch appends to exists for the events after it, though its
            // shard has not seen the append yet.
            std::set<std::string> appended;
            for (const auto* e : events) {
                auto version = [&](const std::string& stream) -> std::int64_t {
                    if (appended.count(stream) > 0) return 1;
                    return shards_->of(stream).stream_version(stream);
                };
                for (auto& append : deliveries(*e, version)) {
                    appended.insert(append.stream);
                    appends.push_back(std::move(append));
                }
            }
            append_per_shard(appends);
        }
        std::vector<std::string> due;
        due.reserve(appends.size());
        for (auto& append : appends) due.push_back(std::move(append.stream));
        PgSchedule::mark_due(txn, std::move(due));
    }

   private:
    struct Append {
        std::string stream;
        std::vector<eventstore::NewEvent> events;
    };

    // What `e` tells the order's processes: an append per process stream, in order.
    // `version(stream)` is a process stream's version (0: none), which tells the mode an
    // order already runs in.
    template <class Version>
    std::vector<Append> deliveries(const eventstore::RecordedEvent& e, Version&& version) {
        std::vector<Append> out;
        // Times from the source event, not the clock: applying the same event again yields
        // the same events, which the store then recognises by their ids.
        for (auto& delivery : route(placing_, running_mode(e, version), e.type, e.payload,
                                    epoch_ms(e.recorded_at))) {
            const auto stream = stream_of(delivery.process, delivery.order_id);
            eventstore::Metadata m = e.metadata;
            m.causation_id = e.event_id;
            if (m.correlation_id.empty()) m.correlation_id = delivery.order_id;
            m.command_id.clear();
            m.actor = "saga";
            std::vector<eventstore::NewEvent> batch;
            for (std::size_t i = 0; i < delivery.events.size(); ++i) {
                const auto& event = delivery.events[i];
                // Ids derived from the source event: a repeat is recognised and appends
                // nothing.
                batch.push_back({derived_event_id(e.event_id, stream + "#" + std::to_string(i)),
                                 event_type(event), encode_payload(event), m,
                                 domain::schema_version(event)});
            }
            out.push_back({stream, std::move(batch)});
        }
        return out;
    }

    // The appends, each shard's in units of work of that shard of at most kAppendsPerUnit
    // (each stream's in order), so that a large batch holds few process streams' locks at
    // once: the runner appends to the same streams. Within a unit the streams are locked in
    // the order of their names, whatever the events' order, so two intakes' units rarely
    // wait on each other in a cycle (group commit may still put them in one transaction with
    // other units; PostgreSQL then breaks the deadlock and the batch is retried). No order
    // across streams is owed.
    static constexpr std::size_t kAppendsPerUnit = 32;
    void append_per_shard(const std::vector<Append>& appends) {
        std::vector<std::pair<eventstore::Store*, std::vector<const Append*>>> by_store;
        for (const auto& append : appends) {
            auto* store = &shards_->of(append.stream);
            auto it = std::find_if(by_store.begin(), by_store.end(),
                                   [&](const auto& entry) { return entry.first == store; });
            if (it == by_store.end()) it = by_store.insert(by_store.end(), {store, {}});
            it->second.push_back(&append);
        }
        for (auto& [store, mine] : by_store) {
            if (mine.size() == 1) {
                // Alone, an append is one statement in autocommit: no BEGIN and COMMIT.
                store->append(mine[0]->stream, eventstore::ExpectedVersion::any(), mine[0]->events);
                continue;
            }
            std::stable_sort(mine.begin(), mine.end(), [](const Append* a, const Append* b) {
                return a->stream < b->stream;
            });
            for (std::size_t from = 0; from < mine.size(); from += kAppendsPerUnit) {
                const auto to = std::min(mine.size(), from + kAppendsPerUnit);
                store->transact([&](eventstore::Session& session) {
                    for (auto i = from; i < to; ++i) {
                        session.append(mine[i]->stream, eventstore::ExpectedVersion::any(),
                                       mine[i]->events);
                    }
                });
            }
        }
    }

    Mode placing_;
    eventstore::Shards* shards_;
};

// The last folds of process streams the saga view made, by stream, the least recently
// used forgotten first. A stream's history never changes, so a fold is valid whatever
// happens to the transaction that made it; the view folds the event it applies onto the
// one before it instead of reading the stream again (which made each order's view cost
// the square of its events), and reads only what came since for the order's other streams.
class ProcessFolds {
   public:
    explicit ProcessFolds(std::size_t capacity) : capacity_{capacity} {}

    std::optional<LoadedProcess> find(const std::string& stream) {
        std::lock_guard lock{mutex_};
        auto it = folds_.find(stream);
        if (it == folds_.end()) return std::nullopt;
        order_.splice(order_.begin(), order_, it->second.second);
        return it->second.first;
    }

    void keep(const std::string& stream, const LoadedProcess& loaded) {
        std::lock_guard lock{mutex_};
        if (auto it = folds_.find(stream); it != folds_.end()) {
            it->second.first = loaded;
            order_.splice(order_.begin(), order_, it->second.second);
            return;
        }
        order_.push_front(stream);
        folds_.emplace(stream, std::make_pair(loaded, order_.begin()));
        if (folds_.size() > capacity_) {
            folds_.erase(order_.back());
            order_.pop_back();
        }
    }

   private:
    std::size_t capacity_;
    std::mutex mutex_;
    std::list<std::string> order_;  // most recently used first
    std::unordered_map<std::string, std::pair<LoadedProcess, std::list<std::string>::iterator>>
        folds_;
};

class SagaViewProjection final : public projections::Projection {
   public:
    SagaViewProjection(std::string schema, const eventstore::Upcasters* upcasters,
                       eventstore::Shards* shards)
        : schema_{std::move(schema)}, upcasters_{upcasters}, shards_{shards} {}

    std::string name() const override { return "sagas"; }
    std::vector<std::string> tables() const override { return {schema_ + ".sagas"}; }

    std::vector<std::string> categories() const override {
        std::vector<std::string> all;
        for (auto mode : {Mode::kOrchestration, Mode::kChoreography}) {
            for (auto& c : process_categories(mode)) all.push_back(std::move(c));
        }
        return all;
    }

    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& e) override {
        apply_batch(target, {&e});
    }

    // Folds every event of the batch, then writes each order's row once, as it stands after
    // the order's last event of the batch: the row apply() one by one would leave.
    void apply_batch(projections::ReadModelTxn& target,
                     const projections::EventRefs& events) override {
        auto& txn = target.sql();
        eventstore::PgSession session{txn, upcasters_};
        std::vector<Row> rows;
        std::unordered_map<std::string, std::size_t> row_of;  // order id -> index in rows
        for (const auto* e : events) {
            const auto id = parse_stream(e->stream_id);
            if (!id) continue;
            auto [it, fresh] = row_of.try_emplace(id->order_id, rows.size());
            if (fresh) rows.emplace_back();
            fold(session, *e, *id, rows[it->second]);
        }
        // In key order: a choreographed order's streams may sit on partitions that other
        // transactions apply at the same time, and rows locked in one order cannot deadlock.
        std::sort(rows.begin(), rows.end(),
                  [](const Row& a, const Row& b) { return a.order_id < b.order_id; });
        write(txn, rows);
    }

   private:
    // An order's row as the batch leaves it.
    struct Row {
        std::string order_id;
        Mode mode = Mode::kOrchestration;
        std::vector<std::pair<ProcessKind, State>> processes;
        std::int64_t version = 0;             // the sum of its streams' versions folded
        std::string updated_at;               // its latest event's time
        std::optional<std::string> trace_id;  // of the first event that had one
    };

    // Folds the order of `e` as it stands once `e` is applied: the stream of `e` up to `e`
    // (the view follows the log), the order's other streams as they are now (their events
    // may sit on other partitions, applied by another projector): what came since their
    // last fold.
    void fold(eventstore::PgSession& local, const eventstore::RecordedEvent& e, const ProcessId& id,
              Row& row) {
        const Mode mode =
            id.kind == ProcessKind::kFulfillment ? Mode::kOrchestration : Mode::kChoreography;
        const auto kinds =
            mode == Mode::kOrchestration
                ? std::vector<ProcessKind>{ProcessKind::kFulfillment}
                : std::vector<ProcessKind>{ProcessKind::kInventory, ProcessKind::kPayments,
                                           ProcessKind::kOrders};
        row.order_id = id.order_id;
        row.mode = mode;
        row.processes.clear();
        row.version = 0;
        for (auto kind : kinds) {
            const auto stream = stream_of(kind, id.order_id);
            LoadOptions up_to_applied{.unreadable = Unreadable::kSkip};
            if (kind == id.kind) up_to_applied.up_to = e.version;
            auto fold = folds_.find(stream);
            if (fold && fold->version > up_to_applied.up_to) fold.reset();  // applied again
            LoadedProcess loaded;
            if (kind == id.kind && fold && fold->version == e.version) {
                loaded = std::move(*fold);  // the same event again (its batch was retried)
            } else if (kind == id.kind && fold && fold->version == e.version - 1) {
                loaded = std::move(*fold);
                fold_recorded(loaded, e, Unreadable::kSkip);
            } else {
                eventstore::EventReader& reader =
                    shards_ ? static_cast<eventstore::EventReader&>(shards_->of(stream)) : local;
                loaded = load_process(reader, stream, up_to_applied,
                                      fold ? std::move(*fold) : LoadedProcess{});
            }
            folds_.keep(stream, loaded);
            row.version += loaded.version;
            if (loaded.version > 0) row.processes.emplace_back(kind, std::move(loaded.state));
        }
        // In choreography an order's streams may sit on different partitions, applied in any
        // order: the row's time is its latest event's, whichever came last, so that a
        // rebuild shows the same. The store's times are fixed-width UTC text, ordered as
        // the instants they name.
        row.updated_at = std::max(row.updated_at, e.recorded_at);
        if (!row.trace_id && !e.metadata.trace_id.empty()) row.trace_id = e.metadata.trace_id;
    }

    // One upsert for every row (in chunks of bounded size): a row keeps its trace id and its
    // latest time.
    void write(pqxx::transaction_base& txn, const std::vector<Row>& rows) const {
        projections::SqlRows upsert{
            txn, "INSERT INTO " + schema_ +
                     ".sagas AS s (order_id, saga_id, mode, status, steps, processes, version, "
                     "updated_at, trace_id) SELECT order_id, saga_id, mode, status, steps, "
                     "processes, version, updated_at, trace_id FROM jsonb_to_recordset($1::jsonb) "
                     "AS x(order_id text, saga_id text, mode text, status text, steps jsonb, "
                     "processes jsonb, version bigint, updated_at timestamptz, trace_id text) ON "
                     "CONFLICT (order_id) DO UPDATE SET saga_id = EXCLUDED.saga_id, mode = "
                     "EXCLUDED.mode, status = EXCLUDED.status, steps = EXCLUDED.steps, processes "
                     "= EXCLUDED.processes, version = EXCLUDED.version, updated_at = "
                     "greatest(s.updated_at, EXCLUDED.updated_at), trace_id = "
                     "coalesce(s.trace_id, EXCLUDED.trace_id)"};
        for (const auto& row : rows) {
            auto view = saga_view(row.mode, row.order_id, row.processes);
            upsert.add({{"order_id", view.order_id},
                        {"saga_id", view.saga_id},
                        {"mode", std::string{to_string(view.mode)}},
                        {"status", view.status},
                        {"steps", std::move(view.steps)},
                        {"processes", std::move(view.processes)},
                        {"version", row.version},
                        {"updated_at", row.updated_at},
                        {"trace_id",
                         row.trace_id ? nlohmann::json(*row.trace_id) : nlohmann::json(nullptr)}});
        }
        upsert.done();
    }

    std::string schema_;
    const eventstore::Upcasters* upcasters_;
    eventstore::Shards* shards_;
    ProcessFolds folds_{1024};
};

}  // namespace

std::unique_ptr<projections::Projection> intake(Mode placing, eventstore::Shards* shards) {
    return std::make_unique<Intake>(placing, shards);
}

std::unique_ptr<projections::Projection> saga_view_projection(
    std::string schema, const eventstore::Upcasters* upcasters, eventstore::Shards* shards) {
    return std::make_unique<SagaViewProjection>(std::move(schema), upcasters, shards);
}

std::string derived_event_id(const std::string& source_event_id, const std::string& salt) {
    const auto text = source_event_id + "\n" + salt;
    std::uint64_t hi = fnv1a64(text, 0xcbf29ce484222325ULL);
    std::uint64_t lo = fnv1a64(text, 0x84222325cbf29ce4ULL);
    // Version 8 (custom), RFC 4122 variant.
    hi = (hi & 0xffffffffffff0fffULL) | 0x0000000000008000ULL;
    lo = (lo & 0x3fffffffffffffffULL) | 0x8000000000000000ULL;
    char buf[40];
    std::snprintf(buf, sizeof buf, "%08x-%04x-%04x-%04x-%012llx", static_cast<unsigned>(hi >> 32),
                  static_cast<unsigned>((hi >> 16) & 0xffff), static_cast<unsigned>(hi & 0xffff),
                  static_cast<unsigned>(lo >> 48),
                  static_cast<unsigned long long>(lo & 0xffffffffffffULL));
    return buf;
}

}  // namespace ordo::sagas
