// The slot store on PostgreSQL: the statements of a slot's transactions.

#include "projections/pg_slot_store.hpp"

#include <cmath>
#include <map>

#include <nlohmann/json.hpp>

#include <pqxx/pqxx>

#include "eventstore/pg_shards.hpp"
#include "platform/core/metrics.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::projections {
namespace {

using eventstore::Checkpoint;

class PgSlotTxn final : public SlotTxn {
   public:
    // `shards`: the readers of a sharded store's events; null when they are in this database.
    PgSlotTxn(pqxx::work& txn, const PgSlotStoreOptions& options,
              eventstore::PgShardReaders* shards)
        : txn_{txn}, read_models_{txn}, options_{options}, shards_{shards} {}

    pqxx::transaction_base& sql() override { return txn_; }
    void on_commit(std::function<void()> change) override {
        read_models_.on_commit(std::move(change));
    }
    std::vector<std::function<void()>> take_changes() { return read_models_.take_changes(); }

    // One round trip on every step but a slot's first: the row is created only when missing
    // (concurrent creators meet in ON CONFLICT, then both lock the one row). Over shards, the
    // row names the shard its position is in (a move rebases it there); the partition's
    // events and head are read from that shard for the rest of this transaction.
    Checkpoint lock_checkpoint(const std::string& projection, int partition) override {
        auto lock = [&] {
            return txn_.exec_params(
                "SELECT transaction_id::text, global_position, shard "
                "FROM ordo.projection_checkpoints "
                "WHERE projection = $1 AND partition = $2 FOR UPDATE",
                projection, partition);
        };
        auto rows = lock();
        if (rows.empty()) {
            // Over shards the row names the partition's owner in the map in force, not the
            // one this process started with (a move may have flipped since), read under the
            // map's lock so that a flip under way rebases the row or is seen by it
            // (migrations/0019_partition_owner.sql).
            txn_.exec_params(shards_ ? "INSERT INTO ordo.projection_checkpoints (projection, "
                                       "partition, shard) VALUES ($1, $2, "
                                       "ordo.partition_owner($2)) ON CONFLICT DO NOTHING"
                                     : "INSERT INTO ordo.projection_checkpoints (projection, "
                                       "partition) VALUES ($1, $2) ON CONFLICT DO NOTHING",
                             projection, partition);
            rows = lock();
        }
        const auto row = rows.at(0);
        if (!row[2].is_null()) {
            note_shard(projection, partition, row[2].as<int>());
        } else if (shards_) {
            // A row from before the store was sharded: a partition that moved since had it
            // rebased, so its position is in the commit order of the shard the map gives it.
            // Naming that shard lets the sweep's survey pass over the slot when it is idle.
            const int shard = shards_->map().shard_of_partition(partition);
            txn_.exec_params(
                "UPDATE ordo.projection_checkpoints SET shard = $3 "
                "WHERE projection = $1 AND partition = $2",
                projection, partition, shard);
            note_shard(projection, partition, shard);
        }
        return Checkpoint{eventstore::transaction_id_from_xid8(row[0].c_str()),
                          row[1].as<std::int64_t>()};
    }

    // The rows that exist, locked in one statement in key order (two transactions locking
    // overlapping sets cannot deadlock); a missing row, or one from before the store was
    // sharded, as lock_checkpoint does it.
    std::vector<Checkpoint> lock_checkpoints(const std::vector<SlotKey>& slots) override {
        auto asked = nlohmann::json::array();
        for (const auto& [projection, partition] : slots) {
            asked.push_back({{"projection", projection}, {"partition", partition}});
        }
        std::map<SlotKey, std::pair<Checkpoint, std::optional<int>>> locked;
        for (const auto& row : txn_.exec_params(
                 "SELECT c.projection, c.partition, c.transaction_id::text, c.global_position, "
                 "c.shard FROM ordo.projection_checkpoints c JOIN jsonb_to_recordset($1::jsonb) "
                 "AS x(projection text, partition integer) ON c.projection = x.projection AND "
                 "c.partition = x.partition ORDER BY c.projection, c.partition FOR UPDATE OF c",
                 asked.dump())) {
            locked[{row[0].as<std::string>(), row[1].as<int>()}] = {
                Checkpoint{eventstore::transaction_id_from_xid8(row[2].c_str()),
                           row[3].as<std::int64_t>()},
                row[4].is_null() ? std::nullopt : std::optional<int>{row[4].as<int>()}};
        }
        std::vector<Checkpoint> out;
        out.reserve(slots.size());
        for (const auto& key : slots) {
            auto it = locked.find(key);
            if (it == locked.end() || (shards_ && !it->second.second)) {
                out.push_back(lock_checkpoint(key.first, key.second));
                continue;
            }
            if (it->second.second) note_shard(key.first, key.second, *it->second.second);
            out.push_back(it->second.first);
        }
        return out;
    }

    void save_checkpoints(const std::vector<CheckpointMove>& moves) override {
        if (moves.size() == 1) {
            const auto& m = moves.front();
            save_checkpoint(m.projection, m.partition, m.next, m.last_event_at);
            return;
        }
        if (moves.empty()) return;
        auto rows = nlohmann::json::array();
        for (const auto& m : moves) {
            rows.push_back(
                {{"projection", m.projection},
                 {"partition", m.partition},
                 {"transaction_id", std::to_string(m.next.transaction_id)},
                 {"global_position", m.next.position},
                 {"last_event_at", m.last_event_at.empty() ? nlohmann::json(nullptr)
                                                           : nlohmann::json(m.last_event_at)}});
        }
        txn_.exec_params(
            "UPDATE ordo.projection_checkpoints c SET transaction_id = x.transaction_id::xid8, "
            "global_position = x.global_position, owner = $2, updated_at = now(), "
            "last_event_at = coalesce(x.last_event_at, c.last_event_at) FROM "
            "jsonb_to_recordset($1::jsonb) AS x(projection text, partition integer, "
            "transaction_id text, global_position bigint, last_event_at timestamptz) "
            "WHERE c.projection = x.projection AND c.partition = x.partition",
            rows.dump(), options_.instance);
    }

    void save_checkpoint(const std::string& projection, int partition, Checkpoint next,
                         const std::string& last_event_at) override {
        txn_.exec_params(
            "UPDATE ordo.projection_checkpoints SET transaction_id = $3::text::xid8, "
            "global_position = $4, owner = $5, updated_at = now(), "
            "last_event_at = coalesce($6::timestamptz, last_event_at) "
            "WHERE projection = $1 AND partition = $2",
            projection, partition, std::to_string(next.transaction_id), next.position,
            options_.instance, last_event_at.empty() ? nullptr : last_event_at.c_str());
    }

    std::vector<eventstore::RecordedEvent> read_partition(
        Checkpoint after, int partition, const std::vector<std::string>& categories,
        std::size_t limit) override {
        if (shards_) {
            return shards_->read_partition(after, partition, categories, limit,
                                           shard_of(partition));
        }
        return eventstore::EventStore::read_partition(txn_, after, options_.partitions, partition,
                                                      categories, limit);
    }

    std::optional<Checkpoint> head(int partition) override {
        if (shards_) return shards_->head(partition, shard_of(partition));
        return eventstore::EventStore::head(txn_);
    }

    std::vector<CheckpointRow> checkpoints(const std::vector<std::string>& projections) override {
        std::vector<CheckpointRow> out;
        for (const auto& row : txn_.exec_params(
                 "SELECT projection, partition, transaction_id::text, global_position, shard "
                 "FROM ordo.projection_checkpoints "
                 "WHERE projection IN (SELECT jsonb_array_elements_text($1::jsonb))",
                 nlohmann::json(projections).dump())) {
            out.push_back({row[0].as<std::string>(), row[1].as<int>(),
                           Checkpoint{eventstore::transaction_id_from_xid8(row[2].c_str()),
                                      row[3].as<std::int64_t>()},
                           row[4].is_null() ? ShardKey{} : ShardKey{row[4].as<int>()}});
        }
        return out;
    }

    Changes changes_after(ShardKey shard, Checkpoint after, std::size_t limit) override {
        if (shards_) {
            // A row that names no shard yet (from before the store was sharded) is given one
            // at its slot's next step: until then its slot is stepped.
            if (!shard) return Changes{.complete = false};
            return shards_->changes_after(*shard, after, limit);
        }
        return eventstore::EventStore::changes_after(txn_, after, options_.partitions, limit);
    }

    std::set<std::pair<std::string, int>> requested_letters() override {
        return requested_dead_letter_slots(txn_);
    }

    std::set<std::pair<std::string, int>> advance(
        ShardKey shard, Checkpoint head, const std::vector<CheckpointRow>& slots) override {
        nlohmann::json moves = nlohmann::json::array();
        for (const auto& slot : slots) {
            moves.push_back({{"projection", slot.projection},
                             {"partition", slot.partition},
                             {"tx", std::to_string(slot.at.transaction_id)},
                             {"pos", slot.at.position}});
        }
        const auto owner = shard ? std::to_string(*shard) : std::string{};
        std::set<std::pair<std::string, int>> moved;
        for (const auto& row : txn_.exec_params(
                 "UPDATE ordo.projection_checkpoints c SET transaction_id = $2::text::xid8, "
                 "global_position = $3, owner = $4, updated_at = now() "
                 "FROM jsonb_to_recordset($1::jsonb) "
                 "  AS u(projection text, partition integer, tx text, pos bigint) "
                 "WHERE c.projection = u.projection AND c.partition = u.partition "
                 "  AND c.transaction_id = u.tx::xid8 AND c.global_position = u.pos "
                 "  AND c.shard IS NOT DISTINCT FROM $5::integer "
                 "RETURNING c.projection, c.partition",
                 moves.dump(), std::to_string(head.transaction_id), head.position,
                 options_.instance, owner.empty() ? nullptr : owner.c_str())) {
            moved.emplace(row[0].as<std::string>(), row[1].as<int>());
        }
        return moved;
    }

    // Plain SAVEPOINT statements: libpqxx 6.4's subtransaction does not roll back to its
    // savepoint after a failed exec_params, which left the transaction aborted, so the
    // dead letter could not be written and the partition stalled on every SQL error.
    void savepoint(const std::function<void(ReadModelTxn&)>& work) override {
        SqlReadModelTxn inner{txn_};
        txn_.exec("SAVEPOINT apply");
        try {
            work(inner);
        } catch (...) {
            try {
                txn_.exec("ROLLBACK TO SAVEPOINT apply");
            } catch (...) {
                // The session is gone; the work's own error says why, and the transaction
                // fails at its next statement.
            }
            throw;
        }
        txn_.exec("RELEASE SAVEPOINT apply");
        inner.keep_in(read_models_);
    }

    std::int64_t park(const std::string& projection, int partition,
                      const eventstore::RecordedEvent& event, const std::string& error,
                      DeadLetterPolicy policy) override {
        return park_dead_letter(txn_, projection, partition, event, error, policy);
    }
    std::vector<OpenDeadLetter> lock_open_letters(const std::string& projection,
                                                  int partition) override {
        return lock_open_dead_letters(txn_, projection, partition);
    }
    void settle(const OpenDeadLetter& letter, DeadLetterStatus outcome,
                const std::string& error) override {
        settle_dead_letter(txn_, letter, outcome, error);
    }

    std::vector<eventstore::PartitionLag> lag(const std::string& projection,
                                              const std::vector<std::string>& categories,
                                              const std::vector<int>& partitions,
                                              std::int64_t max_count) override {
        if (!shards_) {
            return eventstore::partition_lag(txn_, projection, options_.partitions, categories,
                                             partitions, max_count);
        }
        // Every partition's checkpoint in one statement: a statement each cost a projection
        // as many statements as it owns partitions at every status write.
        auto asked = nlohmann::json::array();
        for (int partition : partitions) asked.push_back(partition);
        std::vector<std::pair<int, Checkpoint>> from;
        std::map<int, int> on_shard;
        for (const auto& row : txn_.exec_params(
                 "SELECT partition, transaction_id::text, global_position, shard FROM "
                 "ordo.projection_checkpoints WHERE projection = $1 AND partition IN (SELECT "
                 "jsonb_array_elements_text($2::jsonb)::integer) ORDER BY partition",
                 projection, asked.dump())) {
            const int partition = row[0].as<int>();
            from.emplace_back(partition,
                              Checkpoint{eventstore::transaction_id_from_xid8(row[1].c_str()),
                                         row[2].as<std::int64_t>()});
            if (!row[3].is_null()) on_shard[partition] = row[3].as<int>();
        }
        return shards_->lag(categories, from, max_count, on_shard);
    }

    void record_statuses(const std::vector<SlotStatus>& statuses) override {
        if (statuses.empty()) return;
        auto rows = nlohmann::json::array();
        for (const auto& s : statuses) {
            rows.push_back(
                {{"projection", s.projection},
                 {"partition", s.partition},
                 {"instance", s.instance},
                 {"breaker", s.breaker},
                 {"lag_events", s.lag.events},
                 {"lag_seconds", std::isfinite(s.lag.oldest_seconds) ? s.lag.oldest_seconds : 0.0},
                 {"halted_on", s.halted_on ? nlohmann::json(*s.halted_on) : nullptr},
                 {"breaker_transitions", s.breaker_transitions}});
        }
        txn_.exec_params(
            "INSERT INTO ordo.projection_status (projection, partition, instance, breaker, "
            "lag_events, lag_seconds, halted_on, breaker_transitions, updated_at) "
            "SELECT projection, partition, instance, breaker, lag_events, lag_seconds, "
            "halted_on, breaker_transitions::jsonb, now() FROM jsonb_to_recordset($1::jsonb) AS "
            "s(projection text, partition integer, instance text, breaker text, lag_events "
            "bigint, lag_seconds float8, halted_on bigint, breaker_transitions text) "
            "ON CONFLICT (projection, partition) DO "
            "UPDATE SET instance = EXCLUDED.instance, breaker = EXCLUDED.breaker, lag_events = "
            "EXCLUDED.lag_events, lag_seconds = EXCLUDED.lag_seconds, halted_on = "
            "EXCLUDED.halted_on, breaker_transitions = EXCLUDED.breaker_transitions, "
            "updated_at = now()",
            rows.dump());
    }

   private:
    pqxx::work& txn_;
    SqlReadModelTxn read_models_;
    const PgSlotStoreOptions& options_;
    eventstore::PgShardReaders* shards_;
    // The shard each locked checkpoint names: by slot, and by partition the one locked last
    // (the reads of a partition follow its slot's lock).
    std::map<SlotKey, int> slot_shard_;
    std::map<int, int> checkpoint_shard_;

    void note_shard(const std::string& projection, int partition, int shard) {
        slot_shard_[{projection, partition}] = shard;
        checkpoint_shard_[partition] = shard;
    }

    std::optional<int> checkpoint_shard(const std::string& projection,
                                        int partition) const override {
        auto it = slot_shard_.find({projection, partition});
        if (it == slot_shard_.end()) return std::nullopt;
        return it->second;
    }

    std::optional<int> shard_of(int partition) const {
        auto it = checkpoint_shard_.find(partition);
        if (it == checkpoint_shard_.end()) return std::nullopt;
        return it->second;
    }
};

}  // namespace

struct PgSlotStore::Impl {
    PgSlotStoreOptions options;
    platform::pg::Pool pool;
    std::unique_ptr<eventstore::PgShardReaders> shards;
    Impl(PgSlotStoreOptions o, platform::pg::PoolOptions p)
        : options{std::move(o)}, pool{std::move(p)} {
        if (options.shards && options.shards->version() > 0) {
            auto readers = pool.options();
            readers.preparers.clear();
            readers.name = "projector-events";
            shards = std::make_unique<eventstore::PgShardReaders>(*options.shards,
                                                                  options.database_url, readers);
        }
    }
};

PgSlotStore::PgSlotStore(PgSlotStoreOptions options, platform::metrics::Registry& metrics) {
    // Read-model rows and the checkpoint commit together, so a commit lost in a crash is
    // simply applied again: no need to wait for each one to reach the disk. A transaction
    // that appends events (the saga intake's) commits durably all the same: the store's
    // trigger sees to it (migrations/0014_durable_appends.sql).
    auto relaxed_commit = [](pqxx::connection& c) {
        pqxx::nontransaction tx{c};
        tx.exec("SET synchronous_commit = off");
    };
    platform::pg::PoolOptions pool{.url = options.database_url,
                                   .size = 2,
                                   .statement_timeout = options.statement_timeout,
                                   .name = "projector",
                                   .preparers = {relaxed_commit, &eventstore::EventStore::prepare},
                                   .operation_timeout = options.transaction_bound};
    impl_ = std::make_unique<Impl>(std::move(options), std::move(pool));
    impl_->pool.register_metrics(metrics);
    if (impl_->shards) impl_->shards->register_metrics(metrics);
}

PgSlotStore::~PgSlotStore() = default;

bool PgSlotStore::hidden_on_shards() {
    return impl_->shards && impl_->shards->hidden().has_value();
}

void PgSlotStore::on_new_shard(std::function<void(const eventstore::ShardLocation&)> added) {
    if (impl_->shards) impl_->shards->on_new_shard(std::move(added));
}

void PgSlotStore::transact(const std::function<void(SlotTxn&)>& work) {
    std::vector<std::function<void()>> changes;
    impl_->pool.transact([&](pqxx::work& txn) {
        PgSlotTxn slot_txn{txn, impl_->options, impl_->shards.get()};
        work(slot_txn);
        changes = slot_txn.take_changes();
    });
    for (auto& change : changes) change();
}

platform::FailureKind PgSlotStore::classify(const std::exception_ptr& error) const {
    return platform::pg::classify(error);
}

}  // namespace ordo::projections
