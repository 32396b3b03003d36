#pragma once

// The saga processes' schedule: which processes are due, and which runner holds each one
// for now. The runner works through this interface; PgSchedule keeps it in
// ordo.saga_schedule, MemorySchedule in memory for unit tests.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ordo::sagas {

// A process claimed by one runner. The lease is a fence: every later change a runner makes
// to the process's row names it, and does nothing once another runner has claimed the
// process (after this lease ran out).
struct Claim {
    std::string stream;
    std::string lease;  // opaque: the lease's end as the schedule wrote it
    // How many times the process had been marked due when it was claimed (opaque).
    std::int64_t marks = 0;
    // How long the process had been due when it was claimed (the queue's wait).
    std::chrono::milliseconds overdue{0};
};

// Due and lease times are the schedule's own clock (the database's on PostgreSQL, the one
// the intake marks processes due with), never the runner's. Implementations are
// thread-safe; any number of runners may share one schedule.
class ProcessSchedule {
   public:
    virtual ~ProcessSchedule() = default;

    // Leases up to `batch` due processes, the longest overdue first, for `lease`. A process
    // leased by another runner is not claimed until that lease has passed.
    virtual std::vector<Claim> claim(std::size_t batch, std::chrono::seconds lease) = 0;

    // Extends the claim's lease to `lease` from now; false when it is no longer this
    // claim's (another runner took the process over after it ran out).
    virtual bool renew(Claim& claim, std::chrono::seconds lease) = 0;

    // Releases a claim that is still this runner's: due at once if the process was marked
    // due since it was claimed (the intake appended to it meanwhile, maybe after the runner
    // read it), else due after `wake_in`, else (nothing left to wake it for) off the
    // schedule. The mark is compared on the row the wake-up is filed in, atomically.
    virtual void reschedule(const Claim& claim,
                            std::optional<std::chrono::milliseconds> wake_in) = 0;

    // Releases a claim that is still this runner's, due after `delay`: a process that failed
    // is taken out of the way so the others go on.
    virtual void set_aside(const Claim& claim, std::chrono::seconds delay) = 0;
};

}  // namespace ordo::sagas
