// A slot's checkpointed transactions: the batch, poison isolation, dead-letter settlement.

#include "projections/checkpointed_batch.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

#include <pqxx/pqxx>

#include "eventstore/event_store.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/hops.hpp"
#include "platform/core/metrics.hpp"
#include "projections/live_feed.hpp"

namespace ordo::projections {
namespace {

using eventstore::Checkpoint;

constexpr std::size_t kMaxErrorLength = 4000;
// More poison events than this in a row, with no event applied between them, means the sink
// is failing, not the events.
constexpr std::size_t kMaxPoisonInARow = 3;

std::string clipped(std::string text) {
    if (text.size() > kMaxErrorLength) text.resize(kMaxErrorLength);
    return text;
}

std::string describe(const std::exception_ptr& error) {
    try {
        std::rethrow_exception(error);
    } catch (const std::exception& e) {
        return clipped(e.what());
    } catch (...) {
        return "unknown error";
    }
}

bool handles(const Projection& projection, const eventstore::RecordedEvent& event) {
    const auto categories = projection.categories();
    return categories.empty() ||
           std::find(categories.begin(), categories.end(), event.category) != categories.end();
}

}  // namespace

struct CheckpointedBatch::Impl {
    platform::pg::Pool& pool;
    const LiveFeed& live;
    int partitions;
    std::string instance;
    platform::Logger log;
    platform::metrics::Counter& applied_store;
    platform::metrics::Counter& applied_live;
    platform::metrics::Counter& dead_lettered;
    platform::metrics::Registry& metrics;

    // From each applied event's recorded_at (its transaction's start) to the commit of the
    // batch that applied it: the time to visible through this projection.
    void observe_committed(const Slot& slot, const char* source,
                           const std::vector<std::string>& recorded_at) {
        if (recorded_at.empty()) return;
        auto& hop =
            platform::metrics::hop(metrics, "projector_committed",
                                   {{"projection", slot.projection->name()}, {"source", source}});
        const auto now = std::chrono::system_clock::now();
        for (const auto& at : recorded_at) {
            if (auto age = platform::metrics::seconds_since(at, now)) hop.observe(*age);
        }
    }

    Checkpoint lock_checkpoint(pqxx::transaction_base& txn, const Slot& slot) {
        const auto name = slot.projection->name();
        txn.exec_params(
            "INSERT INTO ordo.projection_checkpoints (projection, partition) VALUES ($1, $2) "
            "ON CONFLICT DO NOTHING",
            name, slot.partition);
        auto row = txn.exec_params1(
            "SELECT transaction_id::text, global_position FROM ordo.projection_checkpoints "
            "WHERE projection = $1 AND partition = $2 FOR UPDATE",
            name, slot.partition);
        return Checkpoint{eventstore::transaction_id_from_xid8(row[0].c_str()),
                          row[1].as<std::int64_t>()};
    }

    void save(pqxx::transaction_base& txn, Slot& slot, Checkpoint next,
              const std::string& last_event_at) {
        slot.at = next;
        txn.exec_params(
            "UPDATE ordo.projection_checkpoints SET transaction_id = $3::text::xid8, "
            "global_position = $4, owner = $5, updated_at = now(), "
            "last_event_at = coalesce($6::timestamptz, last_event_at) "
            "WHERE projection = $1 AND partition = $2",
            slot.projection->name(), slot.partition, std::to_string(next.transaction_id),
            next.position, instance, last_event_at.empty() ? nullptr : last_event_at.c_str());
    }
};

CheckpointedBatch::CheckpointedBatch(platform::pg::Pool& pool, const LiveFeed& live, int partitions,
                                     std::string instance, platform::Logger log,
                                     platform::metrics::Registry& metrics)
    : impl_{new Impl{pool, live, partitions, std::move(instance), std::move(log),
                     metrics.counter("ordo_projection_events_applied_total",
                                     "Events applied to read models", {{"source", "store"}}),
                     metrics.counter("ordo_projection_events_applied_total",
                                     "Events applied to read models", {{"source", "live"}}),
                     metrics.counter("ordo_projection_dead_letters_total",
                                     "Poison events parked in ordo.dead_letters"),
                     metrics}} {}

CheckpointedBatch::~CheckpointedBatch() = default;

std::size_t CheckpointedBatch::apply_next(Slot& slot) {
    auto& d = *impl_;
    std::vector<std::string> applied_at;  // recorded_at of the events applied
    const char* source = "live";
    auto applied = d.pool.transact([&](pqxx::work& txn) -> std::size_t {
        applied_at.clear();
        // The checkpoint row, locked: a batch commits only over the checkpoint it read,
        // so an instance that lost the slot mid-batch cannot apply it a second time.
        const Checkpoint at = d.lock_checkpoint(txn, slot);
        slot.at = at;
        auto run = d.live.run(slot.partition, at, slot.batch);
        if (!run.events.empty()) {
            source = "live";
            for (const auto& event : run.events) {
                if (handles(*slot.projection, event)) {
                    slot.projection->apply(txn, event);
                    applied_at.push_back(event.recorded_at);
                }
            }
            d.save(txn, slot, run.events.back().checkpoint(), run.events.back().recorded_at);
            slot.idle = run.rest_empty;
            d.applied_live.inc(static_cast<double>(run.events.size()));
            return run.events.size();
        }
        auto head = eventstore::EventStore::head(txn);
        auto rows = eventstore::EventStore::read_partition(
            txn, at, d.partitions, slot.partition, slot.projection->categories(), slot.batch);
        Checkpoint next = at;
        std::string last_event_at;
        source = "store";
        for (const auto& event : rows) {
            slot.projection->apply(txn, event);
            next = event.checkpoint();
            last_event_at = event.recorded_at;
            applied_at.push_back(event.recorded_at);
        }
        if (rows.size() < slot.batch && head && *head > next) next = *head;
        slot.idle = rows.size() < slot.batch;
        if (next == at) return 0;
        d.save(txn, slot, next, last_event_at);
        d.applied_store.inc(static_cast<double>(rows.size()));
        return rows.size();
    });
    d.observe_committed(slot, source, applied_at);
    return applied;
}

std::size_t CheckpointedBatch::isolate(Slot& slot, DeadLetterPolicy policy) {
    auto& d = *impl_;
    const auto name = slot.projection->name();
    std::size_t parked = 0;
    std::size_t poison = 0;
    auto applied = d.pool.transact([&](pqxx::work& txn) -> std::size_t {
        parked = 0;
        poison = slot.poison;
        const auto at = d.lock_checkpoint(txn, slot);
        auto rows = eventstore::EventStore::read_partition(
            txn, at, d.partitions, slot.partition, slot.projection->categories(), slot.batch);
        Checkpoint next = at;
        std::string last_event_at;
        std::size_t count = 0;
        for (const auto& event : rows) {
            try {
                pqxx::subtransaction one{txn, "event"};
                slot.projection->apply(one, event);
                one.commit();
                poison = 0;
            } catch (const std::exception&) {
                const auto error = std::current_exception();
                if (platform::pg::classify(error) == platform::FailureKind::transient) throw;
                if (++poison > kMaxPoisonInARow) {
                    throw platform::Unavailable(
                        "projection " + name +
                        " fails on every event; not parking them: " + describe(error));
                }
                ++parked;
                auto id =
                    park_dead_letter(txn, name, slot.partition, event, describe(error), policy);
                d.log.error("poison event parked in dead letters", {{"projection", name},
                                                                    {"partition", slot.partition},
                                                                    {"dead_letter", id},
                                                                    {"event_id", event.event_id},
                                                                    {"type", event.type},
                                                                    {"policy", to_string(policy)},
                                                                    {"error", describe(error)}});
                if (policy == DeadLetterPolicy::halt) {
                    slot.halted_on = id;
                    break;
                }
            }
            next = event.checkpoint();
            last_event_at = event.recorded_at;
            ++count;
        }
        if (next != at) d.save(txn, slot, next, last_event_at);
        return count;
    });
    slot.poison = poison;
    d.dead_lettered.inc(static_cast<double>(parked));
    slot.idle = false;
    return applied;
}

bool CheckpointedBatch::settle(Slot& slot) {
    auto& d = *impl_;
    const auto name = slot.projection->name();
    bool halted = d.pool.transact([&](pqxx::work& txn) -> bool {
        std::optional<std::int64_t> halted_on;
        for (const auto& letter : lock_open_dead_letters(txn, name, slot.partition)) {
            const bool halts = letter.policy == DeadLetterPolicy::halt;
            const auto settlement = settlement_of(letter.status);
            if (settlement == Settlement::wait) {
                if (halts && !halted_on) halted_on = letter.id;
                continue;
            }
            bool applied = false;
            if (settlement == Settlement::apply_again) {
                try {
                    pqxx::subtransaction one{txn, "retry"};
                    if (handles(*slot.projection, letter.event)) {
                        slot.projection->apply(one, letter.event);
                    }
                    one.commit();
                    applied = true;
                } catch (const std::exception&) {
                    const auto error = std::current_exception();
                    if (platform::pg::classify(error) == platform::FailureKind::transient) throw;
                    settle_dead_letter(txn, letter, settled(settlement, false), describe(error));
                    d.log.warn("dead letter retried and failed again; parked",
                               {{"projection", name},
                                {"dead_letter", letter.id},
                                {"error", describe(error)}});
                    if (halts && !halted_on) halted_on = letter.id;
                    continue;
                }
            }
            const auto outcome = settled(settlement, applied);
            settle_dead_letter(txn, letter, outcome);
            if (halts && !halted_on) {
                // The partition waited just before this event: it goes on after it.
                if (d.lock_checkpoint(txn, slot) < letter.event.checkpoint()) {
                    d.save(txn, slot, letter.event.checkpoint(), letter.event.recorded_at);
                }
            }
            d.log.info("dead letter settled", {{"projection", name},
                                               {"dead_letter", letter.id},
                                               {"outcome", to_string(outcome)}});
        }
        slot.halted_on = halted_on;
        return halted_on.has_value();
    });
    if (halted) slot.idle = true;
    return halted;
}

}  // namespace ordo::projections
