// The domain's event schemas and upcasters.
#include "domain/schema.hpp"

#include <string>
#include <utility>

#include "domain/inventory.hpp"
#include "domain/orders.hpp"
#include "domain/payments.hpp"

namespace ordo::domain {

std::vector<EventSchema> event_schemas() {
    std::vector<EventSchema> all;
    for (auto part : {schemas_of<inventory::Event>(), schemas_of<payments::Event>(),
                      schemas_of<orders::Event>()}) {
        all.insert(all.end(), part.begin(), part.end());
    }
    return all;
}

std::vector<Upcaster> upcasters() {
    return {{orders::OrderPlaced::kType, 1, &order_placed_v1_to_v2}};
}

nlohmann::json lines_v1_to_v2(nlohmann::json lines) {
    if (!lines.is_array()) return lines;
    for (auto& line : lines) {
        if (!line.is_object()) continue;
        auto price = line.find("unit_price");
        if (price == line.end() || !price->is_number_integer()) continue;
        *price = {{"amount", *price}, {"currency", std::string{orders::kDefaultCurrency}}};
    }
    return lines;
}

nlohmann::json order_placed_v1_to_v2(nlohmann::json payload) {
    if (payload.is_object() && payload.contains("lines")) {
        payload["lines"] = lines_v1_to_v2(std::move(payload["lines"]));
    }
    return payload;
}

}  // namespace ordo::domain
