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

#include "domain/orders.hpp"
#include "eventstore/event_store.hpp"
#include "eventstore/repository.hpp"
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
//
// With `partly_started`, any one reactor's stream makes the order choreographed: over shards
// an OrderPlaced's three starts are appended on their own shards before the intake's
// checkpoint commits, so a crash between them leaves some reactors started and the event to
// be applied again, and a service that comes back placing in orchestration must let the order
// go on as it began, or it would run in both modes. Only then is it worth the two reads.
template <class Version>
std::optional<Mode> running_mode(const eventstore::RecordedEvent& e, Version&& version,
                                 bool partly_started) {
    if (e.category != "order" || !e.payload.contains("order_id") ||
        !e.payload["order_id"].is_string()) {
        return std::nullopt;
    }
    const auto order_id = e.payload["order_id"].get<std::string>();
    if (version(stream_of(ProcessKind::kFulfillment, order_id)) > 0) return Mode::kOrchestration;
    if (version(stream_of(ProcessKind::kOrders, order_id)) > 0) return Mode::kChoreography;
    if (!partly_started) return std::nullopt;
    for (auto kind : {ProcessKind::kInventory, ProcessKind::kPayments}) {
        if (version(stream_of(kind, order_id)) > 0) return Mode::kChoreography;
    }
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
        // A partly started choreography is the crash's leftover over shards (unsharded the
        // starts commit with the checkpoint), of an OrderPlaced, and only orchestration would
        // place it otherwise.
        const bool partly_started = shards_ && placing_ == Mode::kOrchestration &&
                                    e.type == domain::orders::OrderPlaced::kType;
        for (auto& delivery : route(placing_, running_mode(e, version, partly_started), e.type,
                                    e.payload, epoch_ms(e.recorded_at))) {
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

    // Folds every event of the batch, then writes each order's row once, as applying its
    // events one by one would leave it: the stream of the order's last event of the batch up
    // to that event (the view follows the log), its other streams as they are now (their
    // events may sit on other partitions, applied by another projector). What came since
    // their last folds is read for every order of the batch in one round trip (one per
    // shard), not for each event.
    void apply_batch(projections::ReadModelTxn& target,
                     const projections::EventRefs& events) override {
        auto& txn = target.sql();
        eventstore::PgSession session{txn, upcasters_};
        std::vector<Order> orders;
        std::unordered_map<std::string, std::size_t> order_of;  // order id -> index in orders
        for (const auto* e : events) {
            const auto id = parse_stream(e->stream_id);
            if (!id) continue;
            auto [it, fresh] = order_of.try_emplace(id->order_id, orders.size());
            if (fresh) orders.push_back(Order::of(*id));
            auto& order = orders[it->second];
            auto k = order.index_of(id->kind);
            if (k == order.kinds.size()) {
                // A stream of the other mode (the intake's mode switched while the order was
                // placed): the last event's mode wins, as the row one by one would show.
                auto other = Order::of(*id);
                other.updated_at = std::move(order.updated_at);
                other.trace_id = std::move(order.trace_id);
                order = std::move(other);
                k = order.index_of(id->kind);
            }
            order.folds[k] = fold_own(session, *e, std::move(order.folds[k]));
            order.last = k;
            // The store's times are fixed-width UTC text, ordered as the instants they name:
            // the row's time is its latest event's, whichever stream came last, so that a
            // rebuild shows the same.
            order.updated_at = std::max(order.updated_at, e->recorded_at);
            if (!order.trace_id && !e->metadata.trace_id.empty()) {
                order.trace_id = e->metadata.trace_id;
            }
        }
        fold_others(session, orders);
        // In key order: a choreographed order's streams may sit on partitions that other
        // transactions apply at the same time, and rows locked in one order cannot deadlock.
        std::sort(orders.begin(), orders.end(),
                  [](const Order& a, const Order& b) { return a.order_id < b.order_id; });
        write(txn, orders);
    }

   private:
    // An order as the batch leaves it: the folds of its process streams.
    struct Order {
        std::string order_id;
        Mode mode = Mode::kOrchestration;
        std::vector<ProcessKind> kinds;                   // its process streams' kinds
        std::vector<std::optional<LoadedProcess>> folds;  // by kind; set once folded
        std::size_t last = 0;                             // the kind of its last event
        std::string updated_at;                           // its latest event's time
        std::optional<std::string> trace_id;              // of the first event that had one

        static Order of(const ProcessId& id) {
            Order order;
            order.order_id = id.order_id;
            order.mode =
                id.kind == ProcessKind::kFulfillment ? Mode::kOrchestration : Mode::kChoreography;
            order.kinds =
                order.mode == Mode::kOrchestration
                    ? std::vector<ProcessKind>{ProcessKind::kFulfillment}
                    : std::vector<ProcessKind>{ProcessKind::kInventory, ProcessKind::kPayments,
                                               ProcessKind::kOrders};
            order.folds.resize(order.kinds.size());
            return order;
        }
        // The index of `kind` in kinds; kinds.size() when the order is of the other mode.
        std::size_t index_of(ProcessKind kind) const {
            return static_cast<std::size_t>(std::find(kinds.begin(), kinds.end(), kind) -
                                            kinds.begin());
        }
        std::string stream(std::size_t k) const { return stream_of(kinds[k], order_id); }
    };

    eventstore::EventReader& reader_of(eventstore::PgSession& local, const std::string& stream) {
        return shards_ ? static_cast<eventstore::EventReader&>(shards_->of(stream)) : local;
    }

    // The stream of `e` folded up to `e`: onto the fold before it (this batch's, or the last
    // one kept) when there is one, else read.
    LoadedProcess fold_own(eventstore::PgSession& local, const eventstore::RecordedEvent& e,
                           std::optional<LoadedProcess> fold) {
        if (!fold) fold = folds_.find(e.stream_id);
        if (fold && fold->version > e.version) fold.reset();  // applied again
        if (!fold && e.version == 1) fold.emplace();          // its first event: nothing before
        if (fold && fold->version == e.version) return std::move(*fold);  // its batch retried
        if (fold && fold->version == e.version - 1) {
            fold_recorded(*fold, e, Unreadable::kSkip);
            folds_.keep(e.stream_id, *fold);
            return std::move(*fold);
        }
        auto loaded = load_process(reader_of(local, e.stream_id), e.stream_id,
                                   LoadOptions{.up_to = e.version, .unreadable = Unreadable::kSkip},
                                   fold ? std::move(*fold) : LoadedProcess{});
        folds_.keep(e.stream_id, loaded);
        return loaded;
    }

    // Folds the streams of `orders` other than their last events' as they are now: what came
    // since their last folds, every one in one read.
    void fold_others(eventstore::PgSession& local, std::vector<Order>& orders) {
        std::vector<eventstore::StreamFrom> asked;
        std::vector<std::pair<std::size_t, std::size_t>> whose;  // (order, kind) of each
        for (std::size_t o = 0; o < orders.size(); ++o) {
            auto& order = orders[o];
            for (std::size_t k = 0; k < order.kinds.size(); ++k) {
                if (k == order.last) continue;
                const auto stream = order.stream(k);
                if (!order.folds[k]) order.folds[k] = folds_.find(stream).value_or(LoadedProcess{});
                asked.push_back({stream, order.folds[k]->version + 1});
                whose.emplace_back(o, k);
            }
        }
        if (asked.empty()) return;
        auto read = shards_ ? shards_->read_streams(asked, eventstore::kLoadPage)
                            : local.read_streams(asked, eventstore::kLoadPage);
        for (std::size_t i = 0; i < asked.size(); ++i) {
            const auto& stream = asked[i].stream;
            auto& loaded = *orders[whose[i].first].folds[whose[i].second];
            for (const auto& e : read[i]) fold_recorded(loaded, e, Unreadable::kSkip);
            if (read[i].size() >= eventstore::kLoadPage) {  // more than a page came since
                loaded =
                    load_process(reader_of(local, stream), stream,
                                 LoadOptions{.unreadable = Unreadable::kSkip}, std::move(loaded));
            }
            if (!read[i].empty()) folds_.keep(stream, loaded);
        }
    }

    // One upsert for every row (in chunks of bounded size): a row keeps its trace id and its
    // latest time.
    void write(pqxx::transaction_base& txn, const std::vector<Order>& orders) const {
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
        for (const auto& order : orders) {
            // Every stream's version, summed; the states of those that exist, in kind order.
            std::int64_t version = 0;
            std::vector<std::pair<ProcessKind, State>> processes;
            for (std::size_t k = 0; k < order.kinds.size(); ++k) {
                const auto& fold = *order.folds[k];
                version += fold.version;
                if (fold.version > 0) processes.emplace_back(order.kinds[k], fold.state);
            }
            auto view = saga_view(order.mode, order.order_id, processes);
            upsert.add({{"order_id", view.order_id},
                        {"saga_id", view.saga_id},
                        {"mode", std::string{to_string(view.mode)}},
                        {"status", view.status},
                        {"steps", std::move(view.steps)},
                        {"processes", std::move(view.processes)},
                        {"version", version},
                        {"updated_at", order.updated_at},
                        {"trace_id", order.trace_id ? nlohmann::json(*order.trace_id)
                                                    : nlohmann::json(nullptr)}});
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
