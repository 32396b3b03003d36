// Turns per key in arrival order, bounded: commands on one busy stream queue here, in the
// process, instead of each holding a database connection.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <list>
#include <mutex>
#include <string>
#include <unordered_map>

namespace ordo::platform {

// Takes turns per key: at most one holder of a key at a time, the others waiting in
// arrival order. The command side takes the turn of a command's stream before it takes a
// database connection, so commands on one busy stream queue here, in the process, instead
// of each holding a pooled connection while it waits for the stream's row lock: a hundred
// commands on one stream hold one connection, not the whole pool.
//
// Bounded: a key has at most `max_waiting_per_key` waiters and the whole table at most
// `max_waiting`; past either, or past the caller's deadline, take() throws Overloaded and
// the caller has started nothing. Thread-safe.
class KeyedTurns {
   public:
    struct Options {
        std::size_t max_waiting_per_key = 1024;
        std::size_t max_waiting = 8192;
    };

    class Turn {
       public:
        Turn(Turn&& other) noexcept;
        Turn& operator=(Turn&&) = delete;
        ~Turn();

       private:
        friend class KeyedTurns;
        Turn(KeyedTurns& owner, std::string key);
        KeyedTurns* owner_;
        std::string key_;
    };

    KeyedTurns() : KeyedTurns(Options{}) {}
    explicit KeyedTurns(Options options);
    KeyedTurns(const KeyedTurns&) = delete;
    KeyedTurns& operator=(const KeyedTurns&) = delete;

    // Waits for the key's turn until `deadline`. Throws Overloaded when the key's queue or
    // the table is full, or when the deadline passes first.
    Turn take(const std::string& key, std::chrono::steady_clock::time_point deadline);

    // Keys held or waited for now, and commands waiting (for metrics and tests).
    std::size_t keys() const;
    std::size_t waiting() const;

   private:
    struct Waiter {
        std::condition_variable wake;
        bool granted = false;
    };
    struct Line {
        std::list<Waiter*> waiters;  // in arrival order; the holder is not in it
    };
    void release(const std::string& key);

    Options options_;
    mutable std::mutex mutex_;
    std::unordered_map<std::string, Line> lines_;  // a key is here while it is held
    std::size_t waiting_ = 0;
};

}  // namespace ordo::platform
