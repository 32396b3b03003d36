#include "projections/read_models.hpp"

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"

namespace ordo::projections {
namespace {

template <class... Ts>
struct Overloaded : Ts... {
    using Ts::operator()...;
};
template <class... Ts>
Overloaded(Ts...) -> Overloaded<Ts...>;

// An event this read model cannot decode is poison: the runtime's failure policy decides.
class UndecodableEvent : public std::runtime_error {
   public:
    explicit UndecodableEvent(const eventstore::RecordedEvent& e)
        : std::runtime_error("cannot decode " + e.type + " " + e.event_id) {}
};

class InventoryLevels final : public Projection {
   public:
    std::string name() const override { return "inventory"; }
    std::vector<std::string> categories() const override { return {"inventory"}; }
    void apply(pqxx::transaction_base& txn, const eventstore::RecordedEvent& e) override {
        using namespace domain::inventory;
        auto event = decode(e.type, e.payload);
        if (!event) throw UndecodableEvent(e);
        auto [on_hand, reserved] =
            std::visit(Overloaded{
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
        txn.exec_params(
            "INSERT INTO read.inventory AS i (sku, on_hand, reserved, version, updated_at) "
            "VALUES ($1, $2, $3, $4, $5::timestamptz) ON CONFLICT (sku) DO UPDATE SET "
            "on_hand = i.on_hand + $2, reserved = i.reserved + $3, version = $4, updated_at = "
            "$5::timestamptz",
            e.stream_id.substr(e.category.size() + 1), on_hand, reserved, e.version, e.recorded_at);
    }
};

class AccountBalances final : public Projection {
   public:
    std::string name() const override { return "accounts"; }
    std::vector<std::string> categories() const override { return {"account"}; }
    void apply(pqxx::transaction_base& txn, const eventstore::RecordedEvent& e) override {
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
        const bool creates = std::holds_alternative<FundsDeposited>(*event);
        txn.exec_params(
            std::string{creates ? "INSERT INTO read.accounts AS a (account_id, balance, held, "
                                  "version, updated_at) VALUES ($1, $2, $3, $4, $5::timestamptz) "
                                  "ON CONFLICT (account_id) DO UPDATE SET "
                                : "UPDATE read.accounts AS a SET "} +
                "balance = a.balance + $2, held = a.held + $3, version = $4, "
                "updated_at = $5::timestamptz" +
                (creates ? "" : " WHERE account_id = $1"),
            e.stream_id.substr(e.category.size() + 1), balance, held, e.version, e.recorded_at);
    }
};

class OrderSummaries final : public Projection {
   public:
    std::string name() const override { return "orders"; }
    std::vector<std::string> categories() const override { return {"order"}; }
    void apply(pqxx::transaction_base& txn, const eventstore::RecordedEvent& e) override {
        using namespace domain::orders;
        auto event = decode(e.type, e.payload);
        if (!event) throw UndecodableEvent(e);
        const auto order_id = e.stream_id.substr(e.category.size() + 1);
        std::visit(
            Overloaded{
                [&](const OrderPlaced& p) {
                    auto lines = nlohmann::json::array();
                    for (const auto& l : p.lines) {
                        lines.push_back({{"sku", l.sku},
                                         {"quantity", l.quantity},
                                         {"unit_price", l.unit_price}});
                    }
                    txn.exec_params(
                        "INSERT INTO read.orders (order_id, customer_id, account_id, status, "
                        "lines, total, cancel_reason, version, placed_position, placed_at, "
                        "updated_at) VALUES ($1, $2, $3, 'pending', $4::jsonb, $5, NULL, $6, $7, "
                        "$8::timestamptz, $8::timestamptz)",
                        order_id, p.customer_id, p.account_id, lines.dump(), p.total, e.version,
                        e.position, e.recorded_at);
                },
                [&](const OrderConfirmed&) { set_status(txn, e, order_id, "confirmed", nullptr); },
                [&](const OrderCancelled& c) {
                    set_status(txn, e, order_id, "cancelled", &c.reason);
                },
                [&](const OrderCancellationRequested&) { touch(txn, e, order_id); },
            },
            *event);
    }

   private:
    static void set_status(pqxx::transaction_base& txn, const eventstore::RecordedEvent& e,
                           const std::string& order_id, const char* status,
                           const std::string* reason) {
        txn.exec_params(
            "UPDATE read.orders SET status = $2, cancel_reason = coalesce($3, cancel_reason), "
            "version = $4, updated_at = $5::timestamptz WHERE order_id = $1",
            order_id, std::string{status}, reason ? reason->c_str() : nullptr, e.version,
            e.recorded_at);
    }
    static void touch(pqxx::transaction_base& txn, const eventstore::RecordedEvent& e,
                      const std::string& order_id) {
        txn.exec_params(
            "UPDATE read.orders SET version = $2, updated_at = $3::timestamptz WHERE order_id = $1",
            order_id, e.version, e.recorded_at);
    }
};

// Every event that carries a trace id, for GET /v1/traces/{trace_id}.
class TraceIndex final : public Projection {
   public:
    std::string name() const override { return "traces"; }
    std::vector<std::string> categories() const override { return {}; }
    void apply(pqxx::transaction_base& txn, const eventstore::RecordedEvent& e) override {
        if (e.metadata.trace_id.empty()) return;
        txn.exec_params(
            "INSERT INTO read.trace_events (trace_id, transaction_id, global_position, stream_id, "
            "stream_version, event_type, recorded_at, causation_id, correlation_id) VALUES "
            "($1, $2::text::xid8, $3, $4, $5, $6, $7::timestamptz, $8, $9)",
            e.metadata.trace_id, std::to_string(e.transaction_id), e.position, e.stream_id,
            e.version, e.type, e.recorded_at, e.metadata.causation_id, e.metadata.correlation_id);
    }
};

}  // namespace

std::vector<std::unique_ptr<Projection>> read_models() {
    std::vector<std::unique_ptr<Projection>> out;
    out.push_back(std::make_unique<OrderSummaries>());
    out.push_back(std::make_unique<InventoryLevels>());
    out.push_back(std::make_unique<AccountBalances>());
    out.push_back(std::make_unique<TraceIndex>());
    return out;
}

}  // namespace ordo::projections
