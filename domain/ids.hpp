#pragma once

// The domain's identifiers: what a valid id is, and the stream names built from ids.

#include <string>
#include <string_view>

namespace ordo::domain {

inline constexpr std::size_t kMaxIdLength = 64;

inline constexpr std::string_view kInventoryCategory = "inventory";
inline constexpr std::string_view kAccountCategory = "account";
inline constexpr std::string_view kOrderCategory = "order";

// Identifiers (order, customer, account ids and skus) match [A-Za-z0-9._-]{1,64} and are not
// "." or "..". They end up in stream names, NATS subjects and URL path segments (where the
// two dot names are path navigation, refused by the router), so nothing else gets in.
constexpr bool is_valid_id(std::string_view id) {
    if (id.empty() || id.size() > kMaxIdLength || id == "." || id == "..") return false;
    for (char c : id) {
        const bool alnum =
            (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (!alnum && c != '.' && c != '_' && c != '-') return false;
    }
    return true;
}

inline std::string stream_name(std::string_view category, std::string_view id) {
    std::string name;
    name.reserve(category.size() + 1 + id.size());
    name.append(category).append("-").append(id);
    return name;
}

inline std::string inventory_stream(std::string_view sku) {
    return stream_name(kInventoryCategory, sku);
}
inline std::string account_stream(std::string_view account_id) {
    return stream_name(kAccountCategory, account_id);
}
inline std::string order_stream(std::string_view order_id) {
    return stream_name(kOrderCategory, order_id);
}

}  // namespace ordo::domain
