// The upcaster registry: chains of pure payload steps per event type.
#include "eventstore/upcasting.hpp"

#include <utility>

namespace ordo::eventstore {

UnknownSchemaVersion::UnknownSchemaVersion(std::string event_id, std::string type, int version,
                                           int current)
    : std::runtime_error("event " + event_id + " (" + type + ") has schema version " +
                         std::to_string(version) + "; this reader knows versions 1 to " +
                         std::to_string(current)),
      type_{std::move(type)},
      version_{version},
      current_{current} {}

Upcasters& Upcasters::declare(std::string type) {
    steps_.try_emplace(std::move(type));
    return *this;
}

Upcasters& Upcasters::add(std::string type, int from_version, Step step) {
    if (!step) throw std::invalid_argument("an empty upcaster for " + type);
    auto& chain = steps_[type];
    const int current = static_cast<int>(chain.size()) + 1;
    if (from_version != current) {
        throw std::invalid_argument(
            "upcaster of " + type + " from version " + std::to_string(from_version) +
            ": the next step must start at version " + std::to_string(current) +
            (from_version > current ? " (a gap in the chain)" : " (that step exists)"));
    }
    chain.push_back(std::move(step));
    return *this;
}

bool Upcasters::knows(std::string_view type) const {
    return steps_.find(type) != steps_.end();
}

int Upcasters::current_version(std::string_view type) const {
    auto it = steps_.find(type);
    return it == steps_.end() ? 1 : static_cast<int>(it->second.size()) + 1;
}

std::map<std::string, int, std::less<>> Upcasters::versions() const {
    std::map<std::string, int, std::less<>> out;
    for (const auto& [type, chain] : steps_) out.emplace(type, static_cast<int>(chain.size()) + 1);
    return out;
}

nlohmann::json Upcasters::upcast(std::string_view event_id, std::string_view type, int version,
                                 nlohmann::json payload) const {
    auto it = steps_.find(type);
    if (it == steps_.end()) return payload;
    const auto& chain = it->second;
    const int current = static_cast<int>(chain.size()) + 1;
    if (version < 1 || version > current) {
        throw UnknownSchemaVersion(std::string{event_id}, std::string{type}, version, current);
    }
    for (int v = version; v < current; ++v) {
        payload = chain[static_cast<std::size_t>(v - 1)](std::move(payload));
    }
    return payload;
}

RecordedEvent Upcasters::upcast(RecordedEvent event) const {
    if (!knows(event.type)) return event;
    event.payload =
        upcast(event.event_id, event.type, event.schema_version, std::move(event.payload));
    event.schema_version = current_version(event.type);
    return event;
}

void Upcasters::upcast_all(std::vector<RecordedEvent>& events) const {
    for (auto& e : events) e = upcast(std::move(e));
}

}  // namespace ordo::eventstore
