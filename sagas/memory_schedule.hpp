#pragma once

// The saga schedule in memory, for unit tests of the runner: the same contract as PgSchedule,
// on a clock the test drives.

#include <map>
#include <mutex>

#include "platform/core/clock.hpp"
#include "sagas/schedule.hpp"

namespace ordo::sagas {

// Honours ProcessSchedule as PgSchedule does: due and lease times from `clock`, the oldest
// due first, a leased process not claimed again until its lease has passed (what SKIP
// LOCKED and the lease do together), every release fenced by the claim's lease, and
// reschedule comparing the marks of the claim with the row's. Thread-safe; `clock` must
// outlive it.
class MemorySchedule final : public ProcessSchedule {
   public:
    explicit MemorySchedule(const platform::Clock& clock) : clock_{clock} {}

    // Marks `stream` due now (what the intake does when it appends to a process).
    void mark_due(const std::string& stream);

    std::vector<Claim> claim(std::size_t batch, std::chrono::seconds lease) override;
    bool renew(Claim& claim, std::chrono::seconds lease) override;
    void reschedule(const Claim& claim, std::optional<std::chrono::milliseconds> wake_in) override;
    void set_aside(const Claim& claim, std::chrono::seconds delay) override;

    // A process's row, for tests' "then"; nullopt when it is off the schedule.
    struct Row {
        platform::Clock::time_point due_at;
        std::optional<platform::Clock::time_point> leased_until;
    };
    std::optional<Row> row(const std::string& stream) const;

   private:
    struct Entry {
        Row row;
        std::string lease;  // the current lease's token; empty when none was given
        std::int64_t marks = 0;
    };
    // The entry of `claim` if its lease is still the current one.
    Entry* ours(const Claim& claim);
    std::string lease_token(platform::Clock::time_point until);

    const platform::Clock& clock_;
    mutable std::mutex mutex_;
    std::map<std::string, Entry> rows_;
    std::uint64_t leases_given_ = 0;
};

}  // namespace ordo::sagas
