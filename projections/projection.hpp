#pragma once

// The Projection interface that read models and other event sinks implement.

#include <chrono>

#include <string>
#include <string_view>
#include <vector>

#include <pqxx/transaction_base>

#include "eventstore/event_store.hpp"

namespace ordo::projections {

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
    virtual void apply(pqxx::transaction_base& txn, const eventstore::RecordedEvent& event) = 0;
    // How long one apply may take beyond its database work (a webhook's call), at worst.
    // The runtime sizes this projection's batches so that a batch of such applies stays
    // well inside its transaction bound; zero means database work only.
    virtual std::chrono::milliseconds worst_apply() const { return std::chrono::milliseconds{0}; }
};

}  // namespace ordo::projections
