#pragma once

// The saga schedule in PostgreSQL (ordo.saga_schedule): every statement on that table lives
// in pg_schedule.cpp.

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
    // `pool`'s connections must be prepared with eventstore::EventStore::prepare
    // (reschedule reads the process's stream version in its own transaction).
    explicit PgSchedule(platform::pg::Pool& pool) : pool_{pool} {}

    // Marks `stream` due now inside the caller's transaction (the intake's, which appends
    // the events that make it due).
    static void mark_due(pqxx::transaction_base& txn, const std::string& stream);

    std::vector<Claim> claim(std::size_t batch, std::chrono::seconds lease) override;
    bool renew(Claim& claim, std::chrono::seconds lease) override;
    void reschedule(const Claim& claim, std::int64_t version,
                    std::optional<std::chrono::milliseconds> wake_in) override;
    void set_aside(const Claim& claim, std::chrono::seconds delay) override;

    // Gauges read from the due index, so every runner reports the same figures whatever it
    // processed: ordo_sagas_running, ordo_saga_overdue_seconds. The gauges read through this
    // schedule: it must outlive every scrape of `registry`.
    void register_metrics(platform::metrics::Registry& registry);

   private:
    platform::pg::Pool& pool_;
};

}  // namespace ordo::sagas
