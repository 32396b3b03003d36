#pragma once

// The schema versions of the domain's events and the upcasters from their older versions:
// pure data and pure functions, registered with the event store's upcaster registry by the
// composition root (the domain depends on nothing of Ordo).

#include <nlohmann/json.hpp>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

namespace ordo::domain {

// The schema version writers write for event type E: its kVersion, or 1 when it has none
// (a type that never changed shape).
template <class E>
constexpr int schema_version_of() {
    if constexpr (requires { E::kVersion; }) {
        return E::kVersion;
    } else {
        return 1;
    }
}

// The schema version of the event a variant holds.
template <class... E>
int schema_version(const std::variant<E...>& event) {
    return std::visit([](const auto& e) { return schema_version_of<std::decay_t<decltype(e)>>(); },
                      event);
}

// An event type as writers write it today.
struct EventSchema {
    std::string_view type;
    int version = 1;
    bool operator==(const EventSchema&) const = default;
};

// Every alternative of an event variant with its current version.
template <class Variant>
std::vector<EventSchema> schemas_of() {
    return []<class... E>(std::type_identity<std::variant<E...>>) {
        return std::vector<EventSchema>{{E::kType, schema_version_of<E>()}...};
    }(std::type_identity<Variant>{});
}

// One step of a type's chain: a payload of `from_version` to one of from_version + 1. Pure:
// the same stored payload always becomes the same current one.
struct Upcaster {
    std::string_view type;
    int from_version = 1;
    nlohmann::json (*step)(nlohmann::json) = nullptr;
};

// Every event type the deciders write (inventory, payments, orders), with its version.
std::vector<EventSchema> event_schemas();
// Every step of their chains, in order from version 1.
std::vector<Upcaster> upcasters();

// OrderPlaced 1 -> 2: each line's unit_price, an amount in minor units, becomes
// {"amount": n, "currency": "EUR"} (every order was in euros before prices named a currency).
nlohmann::json order_placed_v1_to_v2(nlohmann::json payload);
// The same for an array of lines in version 1's shape, for whatever else embeds lines (the
// saga's process events); a line already in the new shape, or malformed, is left as it is.
nlohmann::json lines_v1_to_v2(nlohmann::json lines);

}  // namespace ordo::domain
