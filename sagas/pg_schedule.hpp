#pragma once

// The saga schedule in PostgreSQL (ordo.saga_schedule): every statement on that table lives
// in pg_schedule.cpp.

#include <string>
#include <vector>

#include <pqxx/transaction_base>

#include "sagas/schedule.hpp"

namespace ordo::platform::pg {
class Pool;
}
namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::sagas {

// Claims with FOR UPDATE SKIP LOCKED, so runners in any number of processes share the due
// rows without waiting on each other; leases and due times on the database's clock.
class PgSchedule final : public ProcessSchedule {
   public:
    // Every change is one statement, in autocommit.
    explicit PgSchedule(platform::pg::Pool& pool) : pool_{pool} {}

    // Marks `streams` due now inside the caller's transaction (the intake's, which appends
    // the events that make them due), in one statement.
    static void mark_due(pqxx::transaction_base& txn, std::vector<std::string> streams);

    std::vector<Claim> claim(std::size_t batch, std::chrono::seconds lease) override;
    bool renew(Claim& claim, std::chrono::seconds lease) override;
    void reschedule(const Claim& claim, std::optional<std::chrono::milliseconds> wake_in) override;
    void set_aside(const Claim& claim, std::chrono::seconds delay) override;

    // Gauges read from the due index, so every runner reports the same figures whatever it
    // processed: ordo_sagas_running, ordo_saga_overdue_seconds. The gauges read through this
    // schedule: it must outlive every scrape of `registry`.
    void register_metrics(platform::metrics::Registry& registry);

   private:
    platform::pg::Pool& pool_;
};

}  // namespace ordo::sagas
