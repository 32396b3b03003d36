// The one thread that reads projection progress for every parked read and wakes each when its
// token is passed or its deadline comes.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "eventstore/event_store.hpp"
#include "platform/core/log.hpp"
#include "query/parked_waits.hpp"

namespace pqxx {
class transaction_base;
}  // namespace pqxx

namespace ordo::platform::pg {
class Pool;
}

namespace ordo::query {

// Reads where the projections' partitions stand: `projection`'s only, or every projection's.
Progress read_progress(pqxx::transaction_base& tx, int partitions,
                       const std::optional<std::string>& projection);

// Holds requests that wait for a consistency token without holding a thread each: one thread
// reads read.projection_progress for all of them at once — when a projector announces a
// committed batch (NOTIFY ordo_progress, listened for on a connection of its own), and every
// `pause` while any waits in case a notification is lost — and wakes each when its
// partitions pass its token or its deadline comes. Reads are at least `pause` / 5 apart,
// however many commits are announced. At most `capacity` wait at once; park() refuses
// beyond that, so a flood of waits costs a bounded amount of memory and at most five
// queries per pause, whatever its size.
//
// Thread-safe. `wake` runs on the watch's thread, once per parked wait, and must be quick
// (hand the real work to another thread).
class ProgressWatch {
   public:
    enum class Outcome { passed, timed_out, unavailable, stopped };
    using Wake = std::function<void(Outcome)>;

    ProgressWatch(platform::pg::Pool& pool, int partitions, std::size_t capacity,
                  platform::Logger log,
                  std::chrono::milliseconds pause = std::chrono::milliseconds{10});
    ~ProgressWatch();  // stop()
    ProgressWatch(const ProgressWatch&) = delete;
    ProgressWatch& operator=(const ProgressWatch&) = delete;

    // False when `capacity` requests wait already (then `wake` is not kept). `shard`: the
    // token's (Progress::passed).
    bool park(Reads reads, eventstore::Checkpoint token,
              std::chrono::steady_clock::time_point deadline, Wake wake, int shard = 0);

    std::size_t waiting() const;
    // How many times the thread has read the progress (lets tests wait for a fresh look).
    std::uint64_t polls() const;

    // Ends every wait (Outcome::stopped) and joins the thread. Idempotent.
    void stop();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::query
