// Reads that span the shards.

#include "eventstore/shards.hpp"

#include <map>

namespace ordo::eventstore {

std::vector<std::vector<RecordedEvent>> Shards::read_streams(const std::vector<StreamFrom>& streams,
                                                             std::size_t max_count) {
    // Which of `streams` each shard's store holds, in the order asked.
    std::map<Store*, std::vector<std::size_t>> by_store;
    for (std::size_t i = 0; i < streams.size(); ++i) by_store[&of(streams[i].stream)].push_back(i);
    std::vector<std::vector<RecordedEvent>> out(streams.size());
    for (auto& [store, indexes] : by_store) {
        std::vector<StreamFrom> asked;
        asked.reserve(indexes.size());
        for (auto i : indexes) asked.push_back(streams[i]);
        auto read = store->read_streams(asked, max_count);
        for (std::size_t j = 0; j < indexes.size(); ++j) out[indexes[j]] = std::move(read[j]);
    }
    return out;
}

}  // namespace ordo::eventstore
