// The Query API's read models (orders, inventory, accounts, traces): apply() per event, and the
// rebuild's bulk path, which folds a batch per key and merges it with set-based SQL.

#include "projections/read_models.hpp"
#include "domain/overloaded.hpp"

#include <optional>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"
#include "platform/core/errors.hpp"
#include "projections/rebuild.hpp"

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

// A staging table for one batch's merge, gone at commit.
void stage(pqxx::transaction_base& txn, const std::string& name, const std::string& columns) {
    txn.exec("CREATE TEMP TABLE " + name + " (" + columns + ") ON COMMIT DROP");
}

// Additive counters of a keyed row (stock, money), with the version and time of the last
// event that touched it.
struct Totals {
    std::int64_t first = 0;
    std::int64_t second = 0;
    std::int64_t version = 0;
    std::string updated_at;
};

using TotalsRow = std::tuple<std::string, std::int64_t, std::int64_t, std::int64_t, std::string>;

// Upserts the folded totals: a new key is inserted with its sums, an existing one adds
// them, exactly as applying the events one by one with INSERT ... ON CONFLICT would.
void merge_totals(pqxx::transaction_base& txn, const Folded<Totals>& folded,
                  const std::string& table, const std::string& key, const std::string& first,
                  const std::string& second) {
    std::vector<TotalsRow> rows;
    rows.reserve(folded.size());
    folded.each([&](const std::string& k, const Totals& t) {
        rows.emplace_back(k, t.first, t.second, t.version, t.updated_at);
    });
    if (rows.empty()) return;
    const std::string staging = "rebuild_stage_totals";
    stage(txn, staging,
          key + " text, " + first + " bigint, " + second +
              " bigint, version bigint, updated_at timestamptz");
    copy_rows(txn, staging, {key, first, second, "version", "updated_at"}, rows);
    txn.exec("INSERT INTO " + table + " AS t (" + key + ", " + first + ", " + second +
             ", version, updated_at) SELECT " + key + ", " + first + ", " + second +
             ", version, updated_at FROM " + staging + " ON CONFLICT (" + key + ") DO UPDATE SET " +
             first + " = t." + first + " + EXCLUDED." + first + ", " + second + " = t." + second +
             " + EXCLUDED." + second +
             ", version = EXCLUDED.version, updated_at = EXCLUDED.updated_at");
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

class InventoryLevels final : public Projection, public BulkProjection {
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

    class Bulk final : public BulkApply {
       public:
        explicit Bulk(std::string table) : table_{std::move(table)} {}
        void apply_batch(pqxx::transaction_base& txn,
                         const std::vector<eventstore::RecordedEvent>& events) override {
            Folded<Totals> folded;
            for (const auto& e : events) {
                auto [on_hand, reserved] = stock_change(e);
                auto& t = folded.at(entity_id(e));
                t.first += on_hand;
                t.second += reserved;
                t.version = e.version;
                t.updated_at = e.recorded_at;
            }
            merge_totals(txn, folded, table_, "sku", "on_hand", "reserved");
        }

       private:
        std::string table_;
    };
    std::unique_ptr<BulkApply> bulk() const override { return std::make_unique<Bulk>(table_); }

   private:
    std::string table_;
};

class AccountBalances final : public Projection, public BulkProjection {
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

    class Bulk final : public BulkApply {
       public:
        explicit Bulk(std::string table) : table_{std::move(table)} {}
        void apply_batch(pqxx::transaction_base& txn,
                         const std::vector<eventstore::RecordedEvent>& events) override {
            Folded<Totals> folded;
            for (const auto& e : events) {
                auto change = money_change(e);
                auto id = entity_id(e);
                // Before its first deposit an account has no row, and apply() changes
                // nothing for it: the fold starts at that deposit.
                if (!opened_.contains(id)) {
                    if (!change.creates) continue;
                    opened_.insert(id);
                }
                auto& t = folded.at(id);
                t.first += change.balance;
                t.second += change.held;
                t.version = e.version;
                t.updated_at = e.recorded_at;
            }
            merge_totals(txn, folded, table_, "account_id", "balance", "held");
        }

       private:
        std::string table_;
        std::unordered_set<std::string> opened_;  // accounts with a row, over all batches
    };
    std::unique_ptr<BulkApply> bulk() const override { return std::make_unique<Bulk>(table_); }

   private:
    std::string table_;
};

class OrderSummaries final : public Projection, public BulkProjection {
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
                        order_id, p.customer_id, p.account_id, lines_json(p), p.total, e.version,
                        e.position, e.recorded_at);
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

    static std::string lines_json(const domain::orders::OrderPlaced& p) {
        auto lines = nlohmann::json::array();
        for (const auto& l : p.lines) {
            // unit_price stays the amount, as clients of the query API have always read it;
            // its currency is a field of its own beside it.
            lines.push_back({{"sku", l.sku},
                             {"quantity", l.quantity},
                             {"unit_price", l.unit_price},
                             {"currency", l.currency}});
        }
        return lines.dump();
    }

    class Bulk final : public BulkApply {
       public:
        explicit Bulk(std::string table) : table_{std::move(table)} {}
        void apply_batch(pqxx::transaction_base& txn,
                         const std::vector<eventstore::RecordedEvent>& events) override;

       private:
        std::string table_;
    };
    std::unique_ptr<BulkApply> bulk() const override { return std::make_unique<Bulk>(table_); }

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

// A batch's orders: those placed in it are written whole; the others are changes to rows
// of earlier batches (and, like apply(), change nothing when there is no such row).
void OrderSummaries::Bulk::apply_batch(pqxx::transaction_base& txn,
                                       const std::vector<eventstore::RecordedEvent>& events) {
    using namespace domain::orders;
    struct Order {
        bool placed = false;
        std::string customer_id, account_id, lines;
        std::int64_t total = 0, placed_position = 0;
        std::string placed_at;
        std::optional<std::string> status, cancel_reason;  // nullopt: unchanged
        std::int64_t version = 0;
        std::string updated_at;
    };
    Folded<Order> folded;
    for (const auto& e : events) {
        auto event = decode(e.type, e.payload);
        if (!event) throw UndecodableEvent(e);
        const auto order_id = entity_id(e);
        if (const auto* p = std::get_if<OrderPlaced>(&*event)) {
            // Changes before the order was placed met no row in apply(): they vanish.
            folded.erase(order_id);
            folded.at(order_id) = Order{.placed = true,
                                        .customer_id = p->customer_id,
                                        .account_id = p->account_id,
                                        .lines = lines_json(*p),
                                        .total = p->total,
                                        .placed_position = e.position,
                                        .placed_at = e.recorded_at,
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
        o.version = e.version;
        o.updated_at = e.recorded_at;
    }
    using Placed = std::tuple<std::string, std::string, std::string, std::string, std::string,
                              std::int64_t, std::optional<std::string>, std::int64_t, std::int64_t,
                              std::string, std::string>;
    using Change = std::tuple<std::string, std::optional<std::string>, std::optional<std::string>,
                              std::int64_t, std::string>;
    std::vector<Placed> placed;
    std::vector<Change> changes;
    folded.each([&](const std::string& id, const Order& o) {
        if (o.placed) {
            placed.emplace_back(id, o.customer_id, o.account_id, *o.status, o.lines, o.total,
                                o.cancel_reason, o.version, o.placed_position, o.placed_at,
                                o.updated_at);
        } else {
            changes.emplace_back(id, o.status, o.cancel_reason, o.version, o.updated_at);
        }
    });
    copy_rows(txn, table_,
              {"order_id", "customer_id", "account_id", "status", "lines", "total", "cancel_reason",
               "version", "placed_position", "placed_at", "updated_at"},
              placed);
    if (changes.empty()) return;
    stage(txn, "rebuild_stage_orders",
          "order_id text, status text, cancel_reason text, version bigint, updated_at "
          "timestamptz");
    copy_rows(txn, "rebuild_stage_orders",
              {"order_id", "status", "cancel_reason", "version", "updated_at"}, changes);
    txn.exec("UPDATE " + table_ +
             " AS o SET status = coalesce(s.status, o.status), cancel_reason = "
             "coalesce(s.cancel_reason, o.cancel_reason), version = s.version, updated_at = "
             "s.updated_at FROM rebuild_stage_orders s WHERE o.order_id = s.order_id");
}

// Every event that carries a trace id, for GET /v1/traces/{trace_id}.
class TraceIndex final : public Projection, public BulkProjection {
   public:
    explicit TraceIndex(const std::string& schema) : table_{schema + ".trace_events"} {}
    std::string name() const override { return "traces"; }
    std::vector<std::string> categories() const override { return {}; }
    std::vector<std::string> tables() const override { return {table_}; }
    void apply(projections::ReadModelTxn& target, const eventstore::RecordedEvent& e) override {
        auto& txn = target.sql();
        if (e.metadata.trace_id.empty()) return;
        txn.exec_params(
            "INSERT INTO " + table_ +
                " (trace_id, transaction_id, global_position, stream_id, stream_version, "
                "event_type, recorded_at, causation_id, correlation_id) VALUES ($1, "
                "$2::text::xid8, $3, $4, $5, $6, $7::timestamptz, $8, $9)",
            e.metadata.trace_id, std::to_string(e.transaction_id), e.position, e.stream_id,
            e.version, e.type, e.recorded_at, e.metadata.causation_id, e.metadata.correlation_id);
    }

    class Bulk final : public BulkApply {
       public:
        explicit Bulk(std::string table) : table_{std::move(table)} {}
        void apply_batch(pqxx::transaction_base& txn,
                         const std::vector<eventstore::RecordedEvent>& events) override {
            std::vector<
                std::tuple<std::string, std::string, std::int64_t, std::string, std::int64_t,
                           std::string, std::string, std::string, std::string>>
                rows;
            rows.reserve(events.size());
            for (const auto& e : events) {
                if (e.metadata.trace_id.empty()) continue;
                rows.emplace_back(e.metadata.trace_id, std::to_string(e.transaction_id), e.position,
                                  e.stream_id, e.version, e.type, e.recorded_at,
                                  e.metadata.causation_id, e.metadata.correlation_id);
            }
            copy_rows(
                txn, table_,
                {"trace_id", "transaction_id", "global_position", "stream_id", "stream_version",
                 "event_type", "recorded_at", "causation_id", "correlation_id"},
                rows);
        }

       private:
        std::string table_;
    };
    std::unique_ptr<BulkApply> bulk() const override { return std::make_unique<Bulk>(table_); }

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
