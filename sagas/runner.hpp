#pragma once

// The saga runner, and the command bus through which processes send their commands.

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "domain/commands.hpp"
#include "eventstore/shards.hpp"
#include "eventstore/store.hpp"
#include "platform/core/clock.hpp"
#include "platform/core/log.hpp"
#include "sagas/fulfillment.hpp"
#include "sagas/schedule.hpp"

namespace ordo::platform::metrics {
class Registry;
}
namespace ordo::eventstore {
class AppendListener;
}

namespace ordo::sagas {

// How a process's commands reach the command side. A command id already handled returns
// its first outcome and changes nothing, so a resend after a crash takes effect once.
class CommandBus {
   public:
    virtual ~CommandBus() = default;
    // `cause` becomes the metadata of the events the command appends: the trace, the
    // correlation, and the process event that decided the command as causation. Every
    // outcome is a value; an exception is taken as a transient failure (CommandFailed).
    virtual domain::CommandOutcome send(const std::string& command_id,
                                        const domain::InternalCommand& command,
                                        const eventstore::Metadata& cause) = 0;
};

struct RunnerOptions {
    Policy policy;
    // Threads that run processes (at least one). run() claims for all of them, up to two
    // processes per worker in hand (one running, one queued); a queued claim whose lease ran
    // a third down is renewed before it starts, one that ran out is let go.
    int workers = 4;
    // Processes run_due() claims and runs at once.
    std::size_t claim_batch = 1;
    // A claimed process is someone else's to take once this passes without an answer.
    std::chrono::seconds lease{10};
    // An idle worker looks for due processes this often (retries and deadlines fall due
    // by time), and at once when `appends` announces an append (the intake marking a
    // process due).
    std::chrono::milliseconds idle_poll{50};
    // A process one of whose commands the command side would not start (overloaded) is
    // looked at again after this, doubled at random, without having used up an attempt.
    std::chrono::milliseconds not_sent_delay{250};
    eventstore::AppendListener* appends = nullptr;
};

// Runs the processes that are due: the ones the intake woke up, the ones with a retry due
// and the ones with a deadline. Due processes sit in the schedule; any number of runners
// (threads, processes) claim them with a lease, so they share the work and a crashed
// runner's processes are picked up when its lease ends.
//
// Processing one process: load its stream from the store, fold, append what `advance`
// decides (with the expected version: a concurrent writer makes it reload), send the due
// steps' commands in parallel with ids `<stream>/<step>/<attempt>`, append their outcomes,
// and repeat until nothing is due now; then file the next wake-up time.
class Runner {
   public:
    // `store`, `schedule`, `bus`, `clock` and `metrics` must outlive the runner. Whoever
    // waits for appends hears of the runner's through the store.
    Runner(RunnerOptions options, eventstore::Store& store, ProcessSchedule& schedule,
           CommandBus& bus, const platform::Clock& clock, platform::Logger log,
           platform::metrics::Registry& metrics);
    // Over a sharded store: each process stream is loaded from and appended to its own
    // shard, while `schedule` (one for all) says which are due. `shards` outlives the runner.
    Runner(RunnerOptions options, eventstore::Shards& shards, ProcessSchedule& schedule,
           CommandBus& bus, const platform::Clock& clock, platform::Logger log,
           platform::metrics::Registry& metrics);
    ~Runner();

    // Runs `workers` threads, and claims for them on the calling thread, until `stop` is
    // set; survives database outages. Processes claimed but not yet run when it stops are
    // handed back due at once.
    void run(const std::atomic<bool>& stop);

    // Claims and runs one batch of due processes; returns how many. A process that fails is
    // set aside (or parked); throws only when the schedule fails to claim or set aside.
    std::size_t run_due();

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::sagas
