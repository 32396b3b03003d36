#pragma once

// The folds of recently commanded streams, kept in the process so that a command on a stream
// reads only the events after the last one it knows (eventstore::KnownFold).

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>

#include "eventstore/store.hpp"

namespace ordo::command {

// At most `capacity` streams' folds, the least recently used dropped first (capacity 0 keeps
// none). A fold is only ever replaced by one of a higher version: two commands of one stream
// that race to keep theirs (from two executors of one cache, say) leave the newer. Any fold
// kept is correct to start from, old or new, because it is a fold of committed history and
// the loader reads what came after it; an old one only costs a longer read. Thread-safe.
class FoldCache {
   public:
    explicit FoldCache(std::size_t capacity) : capacity_{capacity} {}

    std::shared_ptr<const eventstore::KnownFold> find(const std::string& stream);
    void keep(const std::string& stream, std::shared_ptr<const eventstore::KnownFold> fold);
    std::size_t size() const;

   private:
    using Order = std::list<std::string>;  // most recently used first
    struct Entry {
        std::shared_ptr<const eventstore::KnownFold> fold;
        Order::iterator used;
    };

    const std::size_t capacity_;
    mutable std::mutex mutex_;
    Order order_;
    std::unordered_map<std::string, Entry> entries_;
};

}  // namespace ordo::command
