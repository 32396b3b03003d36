#pragma once

// The Projection interface that read models and other event sinks implement, and the
// transaction they apply in (ReadModelTxn, with SqlReadModelTxn for PostgreSQL).

#include <chrono>
#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <pqxx/transaction_base>

#include "eventstore/event_store.hpp"

namespace ordo::projections {

// Events of a batch, by address: a projection's share of a batch, picked without copying.
using EventRefs = std::vector<const eventstore::RecordedEvent*>;

// What a projection applies an event through: the transaction its changes commit in,
// together with the slot's checkpoint. SQL read models write through sql(); a read model
// kept in memory (a test's) hands its changes to on_commit, so that they take effect exactly
// when the checkpoint moves past the event.
class ReadModelTxn {
   public:
    virtual ~ReadModelTxn() = default;
    // The SQL transaction. Throws std::logic_error where the read models are not SQL (the
    // in-memory slot store): a projection that writes SQL runs on PostgreSQL only.
    virtual pqxx::transaction_base& sql() = 0;
    // Runs `change` once the transaction has committed; never when it, or the savepoint
    // around the apply that called this, rolls back.
    virtual void on_commit(std::function<void()> change) = 0;
};

// A ReadModelTxn over a pqxx transaction. Whoever commits the transaction runs the changes
// it takes out afterwards; a savepoint's changes pass to its parent with keep_in().
class SqlReadModelTxn final : public ReadModelTxn {
   public:
    explicit SqlReadModelTxn(pqxx::transaction_base& txn) : txn_{txn} {}
    pqxx::transaction_base& sql() override { return txn_; }
    void on_commit(std::function<void()> change) override { changes_.push_back(std::move(change)); }
    // The changes handed to on_commit, in order, taken out.
    std::vector<std::function<void()>> take_changes() { return std::exchange(changes_, {}); }
    // Hands the changes to `parent`, to run when it commits (a savepoint released).
    void keep_in(ReadModelTxn& parent) {
        for (auto& change : changes_) parent.on_commit(std::move(change));
        changes_.clear();
    }

   private:
    pqxx::transaction_base& txn_;
    std::vector<std::function<void()>> changes_;
};

// A read model fed by events. The runtime calls apply() for each event of the categories
// it names, in stream order, inside a transaction that also advances the projection's
// checkpoint: each event takes effect on the read model exactly once.
class Projection {
   public:
    virtual ~Projection() = default;
    virtual std::string name() const = 0;
    // Stream categories it reads; empty means every category.
    virtual std::vector<std::string> categories() const = 0;
    // The schema-qualified tables it writes, all of its state: what an offline rebuild
    // recreates and swaps. Empty means it keeps no tables and cannot be rebuilt.
    virtual std::vector<std::string> tables() const { return {}; }
    virtual void apply(ReadModelTxn& txn, const eventstore::RecordedEvent& event) = 0;
    // Applies `events` (of its categories, in the order the runtime applies them) with the
    // same effect as apply() on each in turn. The runtime's batches and the rebuild go
    // through here; this default is that loop, and a projection overrides it to write a
    // batch in fewer statements (folded per row, a statement per table). One failure fails
    // the batch: the runtime then applies its events one at a time to find the poison.
    virtual void apply_batch(ReadModelTxn& txn, const EventRefs& events) {
        for (const auto* event : events) apply(txn, *event);
    }
    // How long one apply may take beyond its database work (a webhook's call), at worst.
    // The runtime sizes this projection's batches so that a batch of such applies stays
    // well inside its transaction bound; zero means database work only.
    virtual std::chrono::milliseconds worst_apply() const { return std::chrono::milliseconds{0}; }
};

}  // namespace ordo::projections
