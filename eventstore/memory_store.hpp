#pragma once

// An event store in memory, for unit tests of the runtimes built on the Store seam: no
// PostgreSQL needed, same contract as EventStore.

#include <memory>

#include "eventstore/store.hpp"
#include "eventstore/upcasting.hpp"

namespace ordo::platform {
class Clock;
}

namespace ordo::eventstore {

// Honours the Store contract as EventStore does: expected versions and ConcurrencyConflict
// with the actual version, idempotent re-appends (replayed), EventIdReused, the same
// InvalidInput texts, commit order with increasing checkpoints, snapshots, the command log
// with fingerprints. Thread-safe. A session holds the whole store until it ends (sessions
// run one at a time, which is one of the orders PostgreSQL could have chosen) and keeps a
// copy of it to roll back to: an exception leaves nothing of the session behind. That copy
// costs O(store size) per session, fine for tests, not for production.
class MemoryStore final : public Store {
   public:
    MemoryStore();
    // Key timestamps (and so expiry) come from `clock`, which must outlive the store.
    explicit MemoryStore(const platform::Clock& clock);
    // Reads return events upcast by `upcasters` (null: the stored shape), as EventStore's
    // do; the events it holds stay as appended. Both must outlive the store; null `clock`
    // is the system clock.
    MemoryStore(const Upcasters* upcasters, const platform::Clock* clock);
    ~MemoryStore() override;
    MemoryStore(const MemoryStore&) = delete;
    MemoryStore& operator=(const MemoryStore&) = delete;

    std::vector<RecordedEvent> read_stream(const std::string& stream, std::int64_t from_version,
                                           std::size_t max_count) override;
    std::vector<RecordedEvent> read_all(Checkpoint after, std::size_t max_count) override;
    AppendResult append(const std::string& stream, ExpectedVersion expected,
                        const std::vector<NewEvent>& events) override;
    std::int64_t stream_version(const std::string& stream) override;
    KeyCutoff key_cutoff(std::chrono::hours age) override;
    std::int64_t expire_keys(KeyCutoff cutoff, std::int64_t batch) override;

    // How many command-log keys are stored (finished or claimed): for tests' "then".
    std::size_t key_count();

   protected:
    void run_session(std::optional<Deadline> deadline,
                     const std::function<void(Session&)>& work) override;

   private:
    class Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::eventstore
