// A comma-separated setting taken apart: NATS server lists, the cluster's instance addresses.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace ordo::platform {

// The items of "a, b,,c": each trimmed of blanks, empty ones dropped ({"a", "b", "c"}).
inline std::vector<std::string> comma_list(std::string_view text) {
    std::vector<std::string> out;
    for (;;) {
        const auto end = text.find(',');
        auto item = text.substr(0, end);
        while (!item.empty() && item.front() == ' ') item.remove_prefix(1);
        while (!item.empty() && item.back() == ' ') item.remove_suffix(1);
        if (!item.empty()) out.emplace_back(item);
        if (end == std::string_view::npos) return out;
        text.remove_prefix(end + 1);
    }
}

}  // namespace ordo::platform
