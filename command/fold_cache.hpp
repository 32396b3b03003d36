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
// none). The last fold kept for a stream replaces the one before, whatever their versions:
// the executor keeps a command's fold while it holds the stream's turn, so folds of one
// stream arrive in commit order, and a fold of a lower version is the one that replaces a
// fold found not to be the stream's history (eventstore::KnownFold). Thread-safe.
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
