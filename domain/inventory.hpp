#pragma once

// The inventory aggregate: its commands, events, state and decider.

#include <cstdint>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "domain/decision.hpp"
#include "domain/recent_settlements.hpp"

// Stock of one sku, stream `inventory-<sku>`. At most one reservation per order: a
// reservation is made once, then either released (compensation) or committed (the order
// shipped), and a resent command never reserves twice nor re-reserves after a release. The
// state remembers the active reservations and the last kRecentSettlements settled orders,
// not every order the sku ever saw (see RecentSettlements, and docs/security.md for why
// that window is enough).
// Invariants: available() >= 0; on_hand = receipts - committed.
namespace ordo::domain::inventory {

inline constexpr std::int64_t kMaxReceiptQuantity = 1'000'000;
inline constexpr std::int64_t kMaxReservationQuantity = 10'000;

struct ReceiveStock {
    std::string sku;
    std::int64_t quantity = 0;
    bool operator==(const ReceiveStock&) const = default;
};

struct ReserveStock {
    static constexpr std::string_view kType = "ReserveStock";
    std::string sku;
    std::string order_id;
    std::int64_t quantity = 0;
    bool operator==(const ReserveStock&) const = default;
};

struct ReleaseReservation {
    static constexpr std::string_view kType = "ReleaseReservation";
    std::string sku;
    std::string order_id;
    bool operator==(const ReleaseReservation&) const = default;
};

struct CommitReservation {
    static constexpr std::string_view kType = "CommitReservation";
    std::string sku;
    std::string order_id;
    bool operator==(const CommitReservation&) const = default;
};

using Command = std::variant<ReceiveStock, ReserveStock, ReleaseReservation, CommitReservation>;

struct StockReceived {
    static constexpr std::string_view kType = "StockReceived";
    std::string sku;
    std::int64_t quantity = 0;
    bool operator==(const StockReceived&) const = default;
};

struct StockReserved {
    static constexpr std::string_view kType = "StockReserved";
    std::string sku;
    std::string order_id;
    std::int64_t quantity = 0;
    bool operator==(const StockReserved&) const = default;
};

struct ReservationReleased {
    static constexpr std::string_view kType = "ReservationReleased";
    std::string sku;
    std::string order_id;
    std::int64_t quantity = 0;
    bool operator==(const ReservationReleased&) const = default;
};

// Stock leaves the warehouse: on hand goes down by the reserved quantity.
struct ReservationCommitted {
    static constexpr std::string_view kType = "ReservationCommitted";
    std::string sku;
    std::string order_id;
    std::int64_t quantity = 0;
    bool operator==(const ReservationCommitted&) const = default;
};

using Event = std::variant<StockReceived, StockReserved, ReservationReleased, ReservationCommitted>;
using Events = std::vector<Event>;
using Decision = domain::Decision<Event>;

// How an order's reservation ended.
enum class Settlement { released, committed };

struct State {
    std::string sku;
    std::int64_t on_hand = 0;
    std::int64_t received = 0;                         // sum of all receipts
    std::map<std::string, std::int64_t> reservations;  // active: order id -> quantity
    RecentSettlements<Settlement> settled;             // ended reservations, newest last

    std::int64_t reserved() const;
    std::int64_t available() const { return on_hand - reserved(); }
    bool exists() const { return received > 0; }

    bool operator==(const State&) const = default;
};

State evolve(State state, const Event& event);

Decision decide(const State& state, const ReceiveStock& command);
Decision decide(const State& state, const ReserveStock& command);
Decision decide(const State& state, const ReleaseReservation& command);
Decision decide(const State& state, const CommitReservation& command);
Decision decide(const State& state, const Command& command);

std::string_view event_type(const Event& event);
nlohmann::json encode_payload(const Event& event);
// nullopt for an unknown type or a malformed payload; never throws.
std::optional<Event> decode(std::string_view type, const nlohmann::json& payload);

// Snapshot of the state; decode_state returns nullopt for anything malformed (never throws).
// It checks shape and types only, not the aggregate's invariants: a snapshot is a cache of
// evolve over the stream, so it holds whatever that fold produced. The first format's
// "released" and "committed" sets still decode: their ids become the settled window
// (committed, then released, each by id, the newest kRecentSettlements kept), which does not
// know their true order; the command side therefore folds from the start rather than trust
// a snapshot of that format.
nlohmann::json encode_state(const State& state);
std::optional<State> decode_state(const nlohmann::json& json);

}  // namespace ordo::domain::inventory
