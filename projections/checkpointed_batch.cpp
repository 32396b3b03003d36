// A slot's checkpointed transactions: the batch, poison isolation, dead-letter settlement.

#include "projections/checkpointed_batch.hpp"

#include <algorithm>
#include <chrono>
#include <optional>
#include <string>
#include <vector>

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

// Whether a projection of `categories` (none: every category) reads `event`.
bool handles(const std::vector<std::string>& categories, const eventstore::RecordedEvent& event) {
    return categories.empty() ||
           std::find(categories.begin(), categories.end(), event.category) != categories.end();
}

// Moves the slot's checkpoint, in the transaction and in the slot.
void save(SlotTxn& txn, Slot& slot, Checkpoint next, const std::string& last_event_at) {
    slot.at = next;
    txn.save_checkpoint(slot.projection->name(), slot.partition, next, last_event_at);
}

// The checkpoint, locked: a batch commits only over the checkpoint it read, so an instance
// that lost the slot mid-batch cannot apply it a second time.
Checkpoint lock(SlotTxn& txn, Slot& slot) {
    slot.at = txn.lock_checkpoint(slot.projection->name(), slot.partition);
    slot.shard = txn.checkpoint_shard(slot.projection->name(), slot.partition);
    return slot.at;
}

// Applies the projection's share of `events` as one batch; `applied_at` gets the recorded_at
// of each event applied.
void apply_batch(SlotTxn& txn, Projection& projection,
                 const std::vector<eventstore::RecordedEvent>& events,
                 std::vector<std::string>& applied_at) {
    // The categories once per batch: a wrapped projection builds the list on every call.
    const auto categories = projection.categories();
    EventRefs mine;
    mine.reserve(events.size());
    for (const auto& event : events) {
        if (handles(categories, event)) mine.push_back(&event);
    }
    if (mine.empty()) return;
    projection.apply_batch(txn, mine);
    for (const auto* event : mine) applied_at.push_back(event->recorded_at);
}

// Applies the live run that continues the slot's checkpoint `at`, at most `limit` events,
// and saves the checkpoint after it, at once or, given `moves`, by adding it there for the
// caller to save with others; the events taken (0: no live run continues `at`, the store
// must be read). `applied_at` gets the recorded_at of each event applied.
std::size_t apply_live_run(SlotTxn& txn, Slot& slot, const LiveFeed& live, Checkpoint at,
                           std::size_t limit, std::vector<std::string>& applied_at,
                           std::vector<SlotTxn::CheckpointMove>* moves = nullptr) {
    auto run = live.run(slot.partition, at, limit, slot.shard);
    if (run.events.empty()) return 0;
    apply_batch(txn, *slot.projection, run.events, applied_at);
    const auto next = run.events.back().checkpoint();
    if (moves) {
        slot.at = next;
        moves->push_back(
            {slot.projection->name(), slot.partition, next, run.events.back().recorded_at});
    } else {
        save(txn, slot, next, run.events.back().recorded_at);
    }
    slot.idle = run.rest_empty;
    return run.events.size();
}

}  // namespace

struct CheckpointedBatch::Impl {
    SlotStore& store;
    const LiveFeed& live;
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

    bool transient(const std::exception_ptr& error) const {
        return store.classify(error) == platform::FailureKind::transient;
    }
};

CheckpointedBatch::CheckpointedBatch(SlotStore& store, const LiveFeed& live, platform::Logger log,
                                     platform::metrics::Registry& metrics)
    : impl_{new Impl{store, live, std::move(log),
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
    std::size_t applied = 0;
    d.store.transact([&](SlotTxn& txn) {
        applied_at.clear();
        const Checkpoint at = lock(txn, slot);
        applied = apply_live_run(txn, slot, d.live, at, slot.batch, applied_at);
        if (applied > 0) {
            source = "live";
            d.applied_live.inc(static_cast<double>(applied));
            return;
        }
        auto head = txn.head(slot.partition);
        auto rows =
            txn.read_partition(at, slot.partition, slot.projection->categories(), slot.batch);
        Checkpoint next = at;
        std::string last_event_at;
        source = "store";
        apply_batch(txn, *slot.projection, rows, applied_at);
        if (!rows.empty()) {
            next = rows.back().checkpoint();
            last_event_at = rows.back().recorded_at;
        }
        if (rows.size() < slot.batch && head && *head > next) next = *head;
        slot.idle = rows.size() < slot.batch;
        if (next == at) return;
        save(txn, slot, next, last_event_at);
        d.applied_store.inc(static_cast<double>(rows.size()));
        applied = rows.size();
    });
    d.observe_committed(slot, source, applied_at);
    return applied;
}

std::vector<std::size_t> CheckpointedBatch::apply_live(const std::vector<Slot*>& slots,
                                                       std::size_t max_events) {
    auto& d = *impl_;
    std::vector<std::size_t> applied;
    std::vector<std::vector<std::string>> applied_at;
    d.store.transact([&](SlotTxn& txn) {
        applied.assign(slots.size(), kNotLive);
        applied_at.assign(slots.size(), {});
        // Every slot's checkpoint locked in one statement, and every move saved in one: two
        // statements a pass, not two a slot.
        std::vector<SlotTxn::SlotKey> keys;
        keys.reserve(slots.size());
        for (const auto* slot : slots) keys.emplace_back(slot->projection->name(), slot->partition);
        const auto locked = txn.lock_checkpoints(keys);
        std::vector<SlotTxn::CheckpointMove> moves;
        std::size_t budget = max_events;
        for (std::size_t i = 0; i < slots.size() && budget > 0; ++i) {
            Slot& slot = *slots[i];
            slot.at = locked[i];
            slot.shard = txn.checkpoint_shard(slot.projection->name(), slot.partition);
            const auto taken = apply_live_run(txn, slot, d.live, slot.at,
                                              std::min(slot.batch, budget), applied_at[i], &moves);
            if (taken == 0) continue;
            budget -= taken;
            applied[i] = taken;
        }
        txn.save_checkpoints(moves);
    });
    for (std::size_t i = 0; i < slots.size(); ++i) {
        if (applied[i] == kNotLive) continue;
        d.applied_live.inc(static_cast<double>(applied[i]));
        d.observe_committed(*slots[i], "live", applied_at[i]);
    }
    return applied;
}

std::size_t CheckpointedBatch::isolate(Slot& slot, DeadLetterPolicy policy) {
    auto& d = *impl_;
    const auto name = slot.projection->name();
    std::size_t parked = 0;
    std::size_t poison = 0;
    std::size_t applied = 0;
    d.store.transact([&](SlotTxn& txn) {
        parked = 0;
        applied = 0;
        poison = slot.poison;
        const auto at = txn.lock_checkpoint(name, slot.partition);
        auto rows =
            txn.read_partition(at, slot.partition, slot.projection->categories(), slot.batch);
        Checkpoint next = at;
        std::string last_event_at;
        for (const auto& event : rows) {
            try {
                txn.savepoint([&](ReadModelTxn& one) { slot.projection->apply(one, event); });
                poison = 0;
            } catch (const std::exception&) {
                const auto error = std::current_exception();
                if (d.transient(error)) throw;
                if (++poison > kMaxPoisonInARow) {
                    throw platform::Unavailable(
                        "projection " + name +
                        " fails on every event; not parking them: " + describe(error));
                }
                ++parked;
                auto id = txn.park(name, slot.partition, event, describe(error), policy);
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
            ++applied;
        }
        if (next != at) save(txn, slot, next, last_event_at);
    });
    slot.poison = poison;
    d.dead_lettered.inc(static_cast<double>(parked));
    slot.idle = false;
    return applied;
}

bool CheckpointedBatch::settle(Slot& slot) {
    auto& d = *impl_;
    const auto name = slot.projection->name();
    std::optional<std::int64_t> halted_on;
    d.store.transact([&](SlotTxn& txn) {
        halted_on.reset();
        for (const auto& letter : txn.lock_open_letters(name, slot.partition)) {
            const bool halts = letter.policy == DeadLetterPolicy::halt;
            const auto settlement = settlement_of(letter.status);
            if (settlement == Settlement::wait) {
                if (halts && !halted_on) halted_on = letter.id;
                continue;
            }
            bool applied = false;
            if (settlement == Settlement::apply_again) {
                try {
                    txn.savepoint([&](ReadModelTxn& one) {
                        if (handles(slot.projection->categories(), letter.event)) {
                            slot.projection->apply(one, letter.event);
                        }
                    });
                    applied = true;
                } catch (const std::exception&) {
                    const auto error = std::current_exception();
                    if (d.transient(error)) throw;
                    txn.settle(letter, settled(settlement, false), describe(error));
                    d.log.warn("dead letter retried and failed again; parked",
                               {{"projection", name},
                                {"dead_letter", letter.id},
                                {"error", describe(error)}});
                    if (halts && !halted_on) halted_on = letter.id;
                    continue;
                }
            }
            const auto outcome = settled(settlement, applied);
            txn.settle(letter, outcome, {});
            if (halts && !halted_on) {
                // The partition waited just before this event: it goes on after it.
                if (txn.lock_checkpoint(name, slot.partition) < letter.event.checkpoint()) {
                    save(txn, slot, letter.event.checkpoint(), letter.event.recorded_at);
                }
            }
            d.log.info("dead letter settled", {{"projection", name},
                                               {"dead_letter", letter.id},
                                               {"outcome", to_string(outcome)}});
        }
    });
    slot.halted_on = halted_on;
    if (halted_on) slot.idle = true;
    return halted_on.has_value();
}

}  // namespace ordo::projections
