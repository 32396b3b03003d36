// The Query API's read models (orders, inventory, accounts, traces): apply() per event, and
// apply_batch(), which folds a batch per key and writes it with a statement per table.

#include "projections/read_models.hpp"
#include "domain/overloaded.hpp"

#include <algorithm>
#include <optional>
#include <tuple>
#include <unordered_map>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>
#include <pqxx/stream_to>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "platform/core/errors.hpp"
#include "projections/sql_rows.hpp"

namespace ordo::projections {
namespace {

using domain::Overloaded;

// An event this read model cannot decode is poison: the runtime's failure policy decides.
class UndecodableEvent : public std::runtime_error {
   public:
    explicit UndecodableEvent(const eventstore::RecordedEvent& e)
        : std::runtime_error("cannot decode " + e.type + " " + e.event_id) {}
};

std::string entity_id(const eventstore::RecordedEvent& e) {
    return e.stream_id.substr(e.category.size() + 1);
}

// Rows of a batch merged per key, in the order their keys first appeared, so a bulk write
// is deterministic.
template <class Value>
class Folded {
   public:
    Value& at(const std::string& key) {
        auto [it, fresh] = index_.try_emplace(key, entries_.size());
        if (fresh) entries_.push_back({key, Value{}, false});
        return entries_[it->second].value;
    }
    // Forgets the key's value; a later at() starts afresh.
    void erase(const std::string& key) {
        auto it = index_.find(key);
        if (it == index_.end()) return;
        entries_[it->second].erased = true;
        index_.erase(it);
    }
    template <class Fn>
    void each(Fn&& fn) const {
        for (const auto& e : entries_) {
            if (!e.erased) fn(e.key, e.value);
        }
    }
    bool contains(const std::string& key) const { return index_.contains(key); }
    std::size_t size() const { return index_.size(); }

   private:
    struct Entry {
        std::string key;
        Value value;
        bool erased;
    };
    std::unordered_map<std::string, std::size_t> index_;
    std::vector<Entry> entries_;
};

// Additive counters of a keyed row (stock, money), with the version and time of the last
// event that touched it.
struct Totals {
    std::int64_t first = 0;
    std::int64_t second = 0;
    std::int64_t version = 0;
    std::string updated_at;

    void add(std::int64_t a, std::int64_t b, const eventstore::RecordedEvent& e) {
        first += a;
        second += b;
        version = e.version;
        updated_at = e.recorded_at;
    }
};

// Writes the folded totals as rows of `key`, `first`, `second`, version and updated_at.
void write_totals(SqlRows& rows, const Folded<Totals>& folded, const std::string& key,
                  const std::string& first, const std::string& second) {
    folded.each([&](const std::string& k, const Totals& t) {
        rows.add({{key, k},
                  {first, t.first},
                  {second, t.second},
                  {"version", t.version},
                  {"updated_at", t.updated_at}});
    });
    rows.done();
}

// The recordset of totals rows, typed.
std::string totals_recordset(const std::string& key, const std::string& first,
                             const std::string& second) {
    return "jsonb_to_recordset($1::jsonb) AS x(" + key + " text, " + first + " bigint, " + second +
           " bigint, version bigint, updated_at timestamptz)";
}

// (on hand, reserved) change of one inventory event.
std::pair<std::int64_t, std::int64_t> stock_change(const eventstore::RecordedEvent& e) {
    using namespace domain::inventory;
    auto event = decode(e.type, e.payload);
    if (!event) throw UndecodableEvent(e);
    return std::visit(Overloaded{
                          [](const StockReceived& s) {
                              return std::pair{s.quantity, std::int64_t{0}};
                          },
                          [](const StockReserved& s) {
                              return std::pair{std::int64_t{0}, s.quantity};
                          },
                          [](const ReservationReleased& s) {
                              return std::pair{std::int64_t{0}, -s.quantity};
                          },
                          [](const ReservationCommitted& s) {
                              return std::pair{-s.quantity, -s.quantity};
                          },
                      },
                      *event);
}

// (balance, held) change of one account event, and whether it opens the account.
struct MoneyChange {
    std::int64_t balance;
    std::int64_t held;
    bool creates;
};

MoneyChange money_change(const eventstore::RecordedEvent& e) {
    using namespace domain::payments;
    auto event = decode(e.type, e.payload);
    if (!event) throw UndecodableEvent(e);
    auto [balance, held] = std::visit(Overloaded{
                                          [](const FundsDeposited& s) {
                                              return std::pair{s.amount, std::int64_t{0}};
                                          },
                                          [](const PaymentAuthorized& s) {
                                              return std::pair{std::int64_t{0}, s.amount};
                                          },
                                          [](const AuthorizationVoided& s) {
                                              return std::pair{std::int64_t{0}, -s.amount};
                                          },
                                          [](const PaymentCaptured& s) {
                                              return std::pair{-s.amount, -s.amount};
                                          },
                                      },
                                      *event);
    // An account exists once money arrived; a zero hold on an unknown account makes none.
    return {balance, held, std::holds_alternative<FundsDeposited>(*event)};
}

class InventoryLevels final : public Projection {
   public:
    explicit InventoryLevels(const std::string& schema) : table_{schema + ".inventory"} {}
    std::string name() const override { return "inventory"; }
    std::vector<std::string> categories() const override { return {"inventory"}; }
    std::vector<std::string> tables() const override { return {table_}; }
    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& e) override {
        auto& txn = target.sql();
        auto [on_hand, reserved] = stock_change(e);
        txn.exec_params("INSERT INTO " + table_ +
                            " AS i (sku, on_hand, reserved, version, updated_at) "
                            "VALUES ($1, $2, $3, $4, $5::timestamptz) ON CONFLICT (sku) DO UPDATE "
                            "SET on_hand = i.on_hand + $2, reserved = i.reserved + $3, version = "
                            "$4, updated_at = $5::timestamptz",
                        entity_id(e), on_hand, reserved, e.version, e.recorded_at);
    }

    // The batch's changes summed per sku, then one upsert that adds them, as the upserts of
    // apply() one by one would.
    void apply_batch(projections::ReadModelTxn& target, const EventRefs& events) override {
        Folded<Totals> folded;
        for (const auto* e : events) {
            auto [on_hand, reserved] = stock_change(*e);
            folded.at(entity_id(*e)).add(on_hand, reserved, *e);
        }
        SqlRows rows{target.sql(),
                     "INSERT INTO " + table_ +
                         " AS i (sku, on_hand, reserved, version, updated_at) SELECT sku, "
                         "on_hand, reserved, version, updated_at FROM " +
                         totals_recordset("sku", "on_hand", "reserved") +
                         " ON CONFLICT (sku) DO UPDATE SET on_hand = i.on_hand + "
                         "EXCLUDED.on_hand, reserved = i.reserved + EXCLUDED.reserved, version = "
                         "EXCLUDED.version, updated_at = EXCLUDED.updated_at"};
        write_totals(rows, folded, "sku", "on_hand", "reserved");
    }

   private:
    std::string table_;
};

class AccountBalances final : public Projection {
   public:
    explicit AccountBalances(const std::string& schema) : table_{schema + ".accounts"} {}
    std::string name() const override { return "accounts"; }
    std::vector<std::string> categories() const override { return {"account"}; }
    std::vector<std::string> tables() const override { return {table_}; }
    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& e) override {
        auto& txn = target.sql();
        auto change = money_change(e);
        txn.exec_params(
            (change.creates ? "INSERT INTO " + table_ +
                                  " AS a (account_id, balance, held, version, updated_at) VALUES "
                                  "($1, $2, $3, $4, $5::timestamptz) ON CONFLICT (account_id) DO "
                                  "UPDATE SET "
                            : "UPDATE " + table_ + " AS a SET ") +
                "balance = a.balance + $2, held = a.held + $3, version = $4, "
                "updated_at = $5::timestamptz" +
                (change.creates ? "" : " WHERE account_id = $1"),
            entity_id(e), change.balance, change.held, e.version, e.recorded_at);
    }

    // apply() one by one changes an account that has a row, and opens one at a deposit; a
    // change to an account without a row changes nothing. So the batch is summed per account
    // twice: every change (for a row that exists), and the changes from the batch's first
    // deposit on (for a row that deposit opens). Two statements: the first adds the whole
    // sums to the rows that exist; the second inserts, for the accounts the batch opens, the
    // sums from the deposit on, and does nothing where the first found a row.
    void apply_batch(projections::ReadModelTxn& target, const EventRefs& events) override {
        Folded<Totals> all;
        Folded<Totals> from_deposit;
        for (const auto* e : events) {
            auto change = money_change(*e);
            const auto id = entity_id(*e);
            all.at(id).add(change.balance, change.held, *e);
            if (change.creates || from_deposit.contains(id)) {
                from_deposit.at(id).add(change.balance, change.held, *e);
            }
        }
        auto& txn = target.sql();
        const auto recordset = totals_recordset("account_id", "balance", "held");
        SqlRows existing{txn, "UPDATE " + table_ +
                                  " AS a SET balance = a.balance + x.balance, held = a.held + "
                                  "x.held, version = x.version, updated_at = x.updated_at FROM " +
                                  recordset + " WHERE a.account_id = x.account_id"};
        write_totals(existing, all, "account_id", "balance", "held");
        SqlRows opened{txn, "INSERT INTO " + table_ +
                                " (account_id, balance, held, version, updated_at) SELECT "
                                "account_id, balance, held, version, updated_at FROM " +
                                recordset + " ON CONFLICT (account_id) DO NOTHING"};
        write_totals(opened, from_deposit, "account_id", "balance", "held");
    }

   private:
    std::string table_;
};

class OrderSummaries final : public Projection {
   public:
    explicit OrderSummaries(const std::string& schema) : table_{schema + ".orders"} {}
    std::string name() const override { return "orders"; }
    std::vector<std::string> categories() const override { return {"order"}; }
    std::vector<std::string> tables() const override { return {table_}; }
    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& e) override {
        auto& txn = target.sql();
        using namespace domain::orders;
        auto event = decode(e.type, e.payload);
        if (!event) throw UndecodableEvent(e);
        const auto order_id = entity_id(e);
        std::visit(
            Overloaded{
                [&](const OrderPlaced& p) {
                    txn.exec_params(
                        "INSERT INTO " + table_ +
                            " (order_id, customer_id, account_id, status, lines, total, "
                            "cancel_reason, version, placed_position, placed_at, updated_at) "
                            "VALUES ($1, $2, $3, 'pending', $4::jsonb, $5, NULL, $6, $7, "
                            "$8::timestamptz, $8::timestamptz)",
                        order_id, p.customer_id, p.account_id, lines_json(p).dump(), p.total,
                        e.version, e.position, e.recorded_at);
                },
                [&](const OrderConfirmed&) { set_status(txn, e, order_id, "confirmed", nullptr); },
                [&](const OrderCancelled& c) {
                    set_status(txn, e, order_id, "cancelled", &c.reason);
                },
                [&](const OrderCancellationRequested&) {
                    txn.exec_params("UPDATE " + table_ +
                                        " SET version = $2, updated_at = $3::timestamptz WHERE "
                                        "order_id = $1",
                                    order_id, e.version, e.recorded_at);
                },
            },
            *event);
    }

    static nlohmann::json lines_json(const domain::orders::OrderPlaced& p) {
        auto lines = nlohmann::json::array();
        for (const auto& l : p.lines) {
            // unit_price stays the amount, as clients of the query API have always read it;
            // its currency is a field of its own beside it.
            lines.push_back({{"sku", l.sku},
                             {"quantity", l.quantity},
                             {"unit_price", l.unit_price},
                             {"currency", l.currency}});
        }
        return lines;
    }

    void apply_batch(projections::ReadModelTxn& target, const EventRefs& events) override;

   private:
    void set_status(pqxx::transaction_base& txn, const eventstore::RecordedEvent& e,
                    const std::string& order_id, const char* status,
                    const std::string* reason) const {
        txn.exec_params("UPDATE " + table_ +
                            " SET status = $2, cancel_reason = coalesce($3, cancel_reason), "
                            "version = $4, updated_at = $5::timestamptz WHERE order_id = $1",
                        order_id, std::string{status}, reason ? reason->c_str() : nullptr,
                        e.version, e.recorded_at);
    }

    std::string table_;
};

// A batch's orders: those placed in it are inserted whole, folded to the batch's end; the
// others are changes to rows of earlier batches (and, like apply(), change nothing when there
// is no such row). An order placed twice fails the insert, as apply() would.
void OrderSummaries::apply_batch(projections::ReadModelTxn& target, const EventRefs& events) {
    using namespace domain::orders;
    struct Order {
        bool placed = false;
        std::string customer_id, account_id;
        std::string lines;  // JSON text
        std::int64_t total = 0, placed_position = 0;
        std::string placed_at;
        std::optional<std::string> status, cancel_reason;  // nullopt: unchanged
        std::int64_t version = 0;
        std::string updated_at;
    };
    Folded<Order> folded;
    for (const auto* e : events) {
        auto event = decode(e->type, e->payload);
        if (!event) throw UndecodableEvent(*e);
        const auto order_id = entity_id(*e);
        if (const auto* p = std::get_if<OrderPlaced>(&*event)) {
            // apply() fails on an order placed twice: so does the batch, and the runtime's
            // isolation then parks the second OrderPlaced as apply() one by one would.
            if (folded.contains(order_id) && folded.at(order_id).placed) {
                throw std::runtime_error("order " + order_id + " placed twice: " + e->event_id);
            }
            // Changes before the order was placed met no row in apply(): they vanish.
            folded.erase(order_id);
            folded.at(order_id) = Order{.placed = true,
                                        .customer_id = p->customer_id,
                                        .account_id = p->account_id,
                                        .lines = lines_json(*p).dump(),
                                        .total = p->total,
                                        .placed_position = e->position,
                                        .placed_at = e->recorded_at,
                                        .status = "pending"};
        } else {
            auto& o = folded.at(order_id);
            std::visit(Overloaded{
                           [](const OrderPlaced&) {},
                           [&](const OrderConfirmed&) { o.status = "confirmed"; },
                           [&](const OrderCancelled& c) {
                               o.status = "cancelled";
                               o.cancel_reason = c.reason;
                           },
                           [](const OrderCancellationRequested&) {},
                       },
                       *event);
        }
        auto& o = folded.at(order_id);
        o.version = e->version;
        o.updated_at = e->recorded_at;
    }
    auto& txn = target.sql();
    SqlRows placed{txn,
                   "INSERT INTO " + table_ +
                       " (order_id, customer_id, account_id, status, lines, total, cancel_reason, "
                       "version, placed_position, placed_at, updated_at) SELECT order_id, "
                       "customer_id, account_id, status, lines, total, cancel_reason, version, "
                       "placed_position, placed_at, updated_at FROM jsonb_to_recordset($1::jsonb) "
                       "AS x(order_id text, customer_id text, account_id text, status text, lines "
                       "jsonb, total bigint, cancel_reason text, version bigint, placed_position "
                       "bigint, placed_at timestamptz, updated_at timestamptz)"};
    SqlRows changes{txn, "UPDATE " + table_ +
                             " AS o SET status = coalesce(x.status, o.status), cancel_reason = "
                             "coalesce(x.cancel_reason, o.cancel_reason), version = x.version, "
                             "updated_at = x.updated_at FROM jsonb_to_recordset($1::jsonb) AS "
                             "x(order_id text, status text, cancel_reason text, version bigint, "
                             "updated_at timestamptz) WHERE o.order_id = x.order_id"};
    auto optional = [](const std::optional<std::string>& v) {
        return v ? nlohmann::json(*v) : nlohmann::json(nullptr);
    };
    // The placed first, then the changes: their orders are not the same ones.
    folded.each([&](const std::string& id, const Order& o) {
        if (!o.placed) return;
        // The lines go in as the text they were serialized to, not a second document.
        placed.add({{"order_id", id},
                    {"customer_id", o.customer_id},
                    {"account_id", o.account_id},
                    {"status", *o.status},
                    {"total", o.total},
                    {"cancel_reason", optional(o.cancel_reason)},
                    {"version", o.version},
                    {"placed_position", o.placed_position},
                    {"placed_at", o.placed_at},
                    {"updated_at", o.updated_at}},
                   "lines", o.lines);
    });
    placed.done();
    folded.each([&](const std::string& id, const Order& o) {
        if (o.placed) return;
        changes.add({{"order_id", id},
                     {"status", optional(o.status)},
                     {"cancel_reason", optional(o.cancel_reason)},
                     {"version", o.version},
                     {"updated_at", o.updated_at}});
    });
    changes.done();
}

// Every event that carries a trace id, for GET /v1/traces/{trace_id}.
class TraceIndex final : public Projection {
   public:
    explicit TraceIndex(const std::string& schema) : table_{schema + ".trace_events"} {}
    std::string name() const override { return "traces"; }
    std::vector<std::string> categories() const override { return {}; }
    std::vector<std::string> tables() const override { return {table_}; }
    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& e) override {
        apply_batch(target, {&e});
    }

    // The batch's traced events in one insert; a large batch (a rebuild's) by COPY, which
    // writes many rows faster than a statement can take them in (docs/operations.md), a
    // small one (the live runtime's) in one prepared statement, which saves COPY's second
    // round trip.
    void apply_batch(projections::ReadModelTxn& target, const EventRefs& events) override {
        static const std::vector<std::string> columns{
            "trace_id",   "transaction_id", "global_position", "stream_id",     "stream_version",
            "event_type", "recorded_at",    "causation_id",    "correlation_id"};
        const auto traced = std::count_if(events.begin(), events.end(), [](const auto* e) {
            return !e->metadata.trace_id.empty();
        });
        if (traced >= kCopyRows) {
            pqxx::stream_to copy{target.sql(), table_, columns};
            for (const auto* e : events) {
                if (e->metadata.trace_id.empty()) continue;
                copy << std::make_tuple(e->metadata.trace_id, std::to_string(e->transaction_id),
                                        e->position, e->stream_id, e->version, e->type,
                                        e->recorded_at, e->metadata.causation_id,
                                        e->metadata.correlation_id);
            }
            copy.complete();
            return;
        }
        SqlRows rows{target.sql(),
                     "INSERT INTO " + table_ +
                         " (trace_id, transaction_id, global_position, stream_id, stream_version, "
                         "event_type, recorded_at, causation_id, correlation_id) SELECT trace_id, "
                         "transaction_id::xid8, global_position, stream_id, stream_version, "
                         "event_type, recorded_at, causation_id, correlation_id FROM "
                         "jsonb_to_recordset($1::jsonb) AS x(trace_id text, transaction_id text, "
                         "global_position bigint, stream_id text, stream_version bigint, "
                         "event_type text, recorded_at timestamptz, causation_id text, "
                         "correlation_id text)"};
        for (const auto* e : events) {
            if (e->metadata.trace_id.empty()) continue;
            rows.add({{columns[0], e->metadata.trace_id},
                      {columns[1], std::to_string(e->transaction_id)},
                      {columns[2], e->position},
                      {columns[3], e->stream_id},
                      {columns[4], e->version},
                      {columns[5], e->type},
                      {columns[6], e->recorded_at},
                      {columns[7], e->metadata.causation_id},
                      {columns[8], e->metadata.correlation_id}});
        }
        rows.done();
    }

    // From this many rows on, a batch goes by COPY.
    static constexpr std::ptrdiff_t kCopyRows = 1000;

   private:
    std::string table_;
};

bool is_plain_identifier(const std::string& s) {
    if (s.empty() || s.size() > 63 || (s[0] >= '0' && s[0] <= '9')) return false;
    for (char c : s) {
        if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_')) return false;
    }
    return true;
}

}  // namespace

std::vector<std::unique_ptr<Projection>> read_models(const std::string& schema) {
    // The schema is spliced into SQL: only a plain identifier gets there.
    if (!is_plain_identifier(schema)) {
        throw platform::InvalidInput(
            "read model schema must be a lower-case identifier of at "
            "most 63 characters: " +
            schema);
    }
    std::vector<std::unique_ptr<Projection>> out;
    out.push_back(std::make_unique<OrderSummaries>(schema));
    out.push_back(std::make_unique<InventoryLevels>(schema));
    out.push_back(std::make_unique<AccountBalances>(schema));
    out.push_back(std::make_unique<TraceIndex>(schema));
    return out;
}

}  // namespace ordo::projections
