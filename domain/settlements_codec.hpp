#pragma once

// Encoding and decoding of RecentSettlements in snapshots.

#include <array>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "domain/payload_reader.hpp"
#include "domain/recent_settlements.hpp"

// The snapshot form of RecentSettlements, shared by the inventory and payments codecs.
namespace ordo::domain::detail {

// The two ways a reservation or hold ends, by name: [undone, done] ("released",
// "committed" or "voided", "captured"); the outcome enum's values are 0 and 1 in that order.
using OutcomeNames = std::array<std::string_view, 2>;

// [{"order_id": ..., "outcome": ...}], oldest first.
template <class Outcome>
nlohmann::json encode_settlements(const RecentSettlements<Outcome>& settled,
                                  const OutcomeNames& names) {
    nlohmann::json out = nlohmann::json::array();
    for (const auto& [order_id, outcome] : settled.entries()) {
        out.push_back({{"order_id", order_id}, {"outcome", names[static_cast<int>(outcome)]}});
    }
    return out;
}

// The settlements of a snapshot: the "settled" array when there is one, else the first
// format's two id sets (see inventory::decode_state). More entries than a state holds,
// or an unknown outcome, is malformed; the same order twice is not (a fold over a
// history that settles an order again, beyond the window, can hold it twice).
template <class Outcome>
RecentSettlements<Outcome> read_settlements(PayloadReader& in, const nlohmann::json& json,
                                            const OutcomeNames& names) {
    RecentSettlements<Outcome> settled;
    if (json.is_object() && json.contains("settled")) {
        const auto& entries = in.array("settled");
        if (entries.size() > kRecentSettlements) in.fail();
        for (const nlohmann::json& element : entries) {
            PayloadReader entry(element);
            std::string order_id = entry.text("order_id");
            const std::string outcome = entry.text("outcome");
            if (!entry.ok() || (outcome != names[0] && outcome != names[1])) {
                in.fail();
                return {};
            }
            settled.record(std::move(order_id),
                           outcome == names[0] ? static_cast<Outcome>(0) : static_cast<Outcome>(1));
        }
        return settled;
    }
    const auto done = read_order_ids(in, names[1]);
    const auto undone = read_order_ids(in, names[0]);
    for (const auto& order_id : done) settled.record(order_id, static_cast<Outcome>(1));
    for (const auto& order_id : undone) settled.record(order_id, static_cast<Outcome>(0));
    return settled;
}

}  // namespace ordo::domain::detail
