#include "query/event_feed.hpp"

#include <algorithm>
#include <stdexcept>
#include <tuple>

#include <nlohmann/json.hpp>

namespace ordo::query {
namespace {

bool selected(const std::vector<std::string>& names, const std::string& name) {
    return names.empty() || std::find(names.begin(), names.end(), name) != names.end();
}

std::string dump(const nlohmann::json& value) {
    return value.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace

FeedPosition::FeedPosition(std::vector<int> shards)
    : shards_{std::move(shards)}, at_(shards_.size()) {
    std::sort(shards_.begin(), shards_.end());
    if (shards_.empty() || std::adjacent_find(shards_.begin(), shards_.end()) != shards_.end()) {
        throw std::invalid_argument("a feed position is over one or more shards, each once");
    }
}

std::optional<FeedPosition> FeedPosition::parse(std::string_view token, std::vector<int> shards) {
    FeedPosition out{std::move(shards)};
    if (token.empty() || token.size() > kMaxTokenSize) return std::nullopt;
    std::vector<bool> seen(out.shards_.size());
    while (true) {
        const auto comma = token.find(',');
        const auto item = eventstore::ShardToken::parse(token.substr(0, comma));
        if (!item) return std::nullopt;
        const auto it = std::find(out.shards_.begin(), out.shards_.end(), item->shard);
        if (it == out.shards_.end()) return std::nullopt;
        const auto index = static_cast<std::size_t>(it - out.shards_.begin());
        if (seen[index]) return std::nullopt;
        seen[index] = true;
        out.at_[index] = item->at;
        if (comma == std::string_view::npos) break;
        token.remove_prefix(comma + 1);
    }
    return out;
}

FeedPosition FeedPosition::over(std::vector<int> shards) const {
    FeedPosition out{std::move(shards)};
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        const auto it = std::find(out.shards_.begin(), out.shards_.end(), shards_[i]);
        if (it == out.shards_.end()) {
            throw std::invalid_argument("a feed position names shard " +
                                        std::to_string(shards_[i]) +
                                        ", which the shards it is put over lack");
        }
        out.at_[static_cast<std::size_t>(it - out.shards_.begin())] = at_[i];
    }
    return out;
}

std::optional<std::vector<int>> FeedPosition::named_shards(std::string_view token) {
    if (token.empty() || token.size() > kMaxTokenSize) return std::nullopt;
    std::vector<int> named;
    while (true) {
        const auto comma = token.find(',');
        const auto item = eventstore::ShardToken::parse(token.substr(0, comma));
        if (!item || item->shard >= eventstore::kMaxShards ||
            std::find(named.begin(), named.end(), item->shard) != named.end()) {
            return std::nullopt;
        }
        named.push_back(item->shard);
        if (comma == std::string_view::npos) return named;
        token.remove_prefix(comma + 1);
    }
}

void FeedPosition::advance(std::size_t index, eventstore::Checkpoint to) {
    at_.at(index) = std::max(at_.at(index), to);
}

std::string FeedPosition::token() const {
    if (shards_.size() == 1 && shards_[0] == 0) return at_[0].token();
    std::string out;
    for (std::size_t i = 0; i < shards_.size(); ++i) {
        if (i > 0) out += ',';
        out += eventstore::ShardToken{shards_[i], at_[i]}.token();
    }
    return out;
}

FeedPage merge_reads(const FeedPosition& from, std::vector<ShardRead> reads, std::size_t limit) {
    if (reads.size() != from.shards().size()) {
        throw std::invalid_argument("merge_reads takes one read per shard of the position");
    }
    // (shard index, event index) in page order.
    std::vector<std::pair<std::size_t, std::size_t>> order;
    for (std::size_t s = 0; s < reads.size(); ++s) {
        for (std::size_t e = 0; e < reads[s].events.size(); ++e) order.emplace_back(s, e);
    }
    // A stable sort keeps each shard's commit order among events recorded at the same time.
    std::stable_sort(order.begin(), order.end(), [&](const auto& a, const auto& b) {
        return std::tie(reads[a.first].events[a.second].recorded_at, a.first) <
               std::tie(reads[b.first].events[b.second].recorded_at, b.first);
    });
    // A shard's events are taken in its commit order even when a later one was recorded first
    // (recorded_at is its transaction's start): the sort may not put them before it.
    std::vector<std::size_t> next(reads.size(), 0);
    std::vector<std::pair<std::size_t, std::size_t>> taken;
    for (const auto& [s, e] : order) {
        if (taken.size() == limit) break;
        for (; next[s] <= e && taken.size() < limit; ++next[s]) taken.emplace_back(s, next[s]);
    }
    std::fill(next.begin(), next.end(), 0);
    FeedPage page{{}, from};
    for (const auto& [s, e] : taken) {
        page.next.advance(s, reads[s].events[e].checkpoint());
        next[s] = e + 1;
        page.events.emplace_back(std::move(reads[s].events[e]), page.next);
    }
    for (std::size_t s = 0; s < reads.size(); ++s) {
        if (next[s] == reads[s].events.size()) page.next.advance(s, reads[s].read_to);
    }
    return page;
}

eventstore::RecordedEvent as_current(const eventstore::Upcasters* upcasters,
                                     eventstore::RecordedEvent event,
                                     const std::function<void(const eventstore::RecordedEvent&,
                                                              const std::exception&)>& unreadable) {
    if (upcasters == nullptr) return event;
    try {
        return upcasters->upcast(event);
    } catch (const std::exception& e) {
        // A version newer than known, or a payload an upcaster cannot read: as stored.
        if (unreadable) unreadable(event, e);
        return event;
    }
}

bool EventSelection::matches(const eventstore::RecordedEvent& event) const {
    return selected(categories, event.category) && selected(types, event.type);
}

namespace {

// Every field event_json shows but the position.
nlohmann::json event_fields(const eventstore::RecordedEvent& event) {
    return {{"stream", event.stream_id},
            {"category", event.category},
            {"version", event.version},
            {"type", event.type},
            {"schema_version", event.schema_version},
            {"event_id", event.event_id},
            {"payload", event.payload},
            {"metadata", event.metadata.to_json()},
            {"recorded_at", event.recorded_at}};
}

}  // namespace

nlohmann::json event_json(const eventstore::RecordedEvent& event, const FeedPosition& position) {
    auto j = event_fields(event);
    j["position"] = position.token();
    return j;
}

std::string sse_body(const eventstore::RecordedEvent& event) {
    return dump(event_fields(event));
}

std::string sse_event(std::string_view body, const FeedPosition& position) {
    const auto id = position.token();
    // `body` is an object with fields: "{" then at least one.
    return "id: " + id + "\ndata: {\"position\":" + dump(id) + "," + std::string{body.substr(1)} +
           "\n\n";
}

std::string sse_event(const eventstore::RecordedEvent& event, const FeedPosition& position) {
    return sse_event(sse_body(event), position);
}

std::string sse_heartbeat(const FeedPosition& position) {
    return ": heartbeat\nid: " + position.token() + "\n\n";
}

std::string sse_retry(int milliseconds) {
    return "retry: " + std::to_string(milliseconds) + "\n\n";
}

std::string sse_end(std::string_view type, std::string_view detail) {
    return "event: end\ndata: " + dump({{"type", type}, {"detail", detail}}) + "\n\n";
}

}  // namespace ordo::query
