#pragma once

// The account aggregate (payments): its commands, events, state and decider.

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

// A customer's account, stream `account-<account_id>`. At most one authorization (hold) per
// order: authorized once, then voided (compensation) or captured (the order confirmed), and
// a resent command never holds twice nor holds again after a void. The state remembers the
// active holds and the last kRecentSettlements settled orders, not every order the account
// ever paid for (see RecentSettlements).
// Invariants: available() >= 0; balance = deposits - captured.
namespace ordo::domain::payments {

inline constexpr std::int64_t kMaxDepositAmount = 1'000'000'000'000;

struct Deposit {
    std::string account_id;
    std::int64_t amount = 0;
    bool operator==(const Deposit&) const = default;
};

// An amount of 0 is a valid authorization (an order may total 0): it is recorded like any
// other hold, so the saga's capture and void work the same for every order, and it needs no
// funds, so it succeeds even on an account that has never received a deposit.
struct AuthorizePayment {
    static constexpr std::string_view kType = "AuthorizePayment";
    std::string account_id;
    std::string order_id;
    std::int64_t amount = 0;
    bool operator==(const AuthorizePayment&) const = default;
};

struct VoidAuthorization {
    static constexpr std::string_view kType = "VoidAuthorization";
    std::string account_id;
    std::string order_id;
    bool operator==(const VoidAuthorization&) const = default;
};

struct CapturePayment {
    static constexpr std::string_view kType = "CapturePayment";
    std::string account_id;
    std::string order_id;
    bool operator==(const CapturePayment&) const = default;
};

using Command = std::variant<Deposit, AuthorizePayment, VoidAuthorization, CapturePayment>;

struct FundsDeposited {
    static constexpr std::string_view kType = "FundsDeposited";
    std::string account_id;
    std::int64_t amount = 0;
    bool operator==(const FundsDeposited&) const = default;
};

struct PaymentAuthorized {
    static constexpr std::string_view kType = "PaymentAuthorized";
    std::string account_id;
    std::string order_id;
    std::int64_t amount = 0;
    bool operator==(const PaymentAuthorized&) const = default;
};

struct AuthorizationVoided {
    static constexpr std::string_view kType = "AuthorizationVoided";
    std::string account_id;
    std::string order_id;
    std::int64_t amount = 0;
    bool operator==(const AuthorizationVoided&) const = default;
};

// Money leaves the account: balance goes down by the held amount.
struct PaymentCaptured {
    static constexpr std::string_view kType = "PaymentCaptured";
    std::string account_id;
    std::string order_id;
    std::int64_t amount = 0;
    bool operator==(const PaymentCaptured&) const = default;
};

using Event = std::variant<FundsDeposited, PaymentAuthorized, AuthorizationVoided, PaymentCaptured>;
using Events = std::vector<Event>;
using Decision = domain::Decision<Event>;

// How an order's hold ended.
enum class Settlement { voided, captured };

struct State {
    std::string account_id;
    std::int64_t balance = 0;
    std::int64_t deposited = 0;                 // sum of all deposits
    std::map<std::string, std::int64_t> holds;  // active: order id -> amount
    RecentSettlements<Settlement> settled;      // ended holds, newest last

    std::int64_t held() const;
    std::int64_t available() const { return balance - held(); }
    // An account exists once money was deposited; a zero authorization alone does not
    // make one.
    bool exists() const { return deposited > 0; }

    bool operator==(const State&) const = default;
};

State evolve(State state, const Event& event);

Decision decide(const State& state, const Deposit& command);
Decision decide(const State& state, const AuthorizePayment& command);
Decision decide(const State& state, const VoidAuthorization& command);
Decision decide(const State& state, const CapturePayment& command);
Decision decide(const State& state, const Command& command);

std::string_view event_type(const Event& event);
nlohmann::json encode_payload(const Event& event);
// nullopt for an unknown type or a malformed payload; never throws.
std::optional<Event> decode(std::string_view type, const nlohmann::json& payload);

// Snapshot of the state; decode_state returns nullopt for anything malformed (never throws).
// It checks shape and types only, not the aggregate's invariants: a snapshot is a cache of
// evolve over the stream, so it holds whatever that fold produced. The first format's
// "voided" and "captured" sets still decode, as inventory::decode_state describes.
nlohmann::json encode_state(const State& state);
std::optional<State> decode_state(const nlohmann::json& json);

}  // namespace ordo::domain::payments
