// How many events a projection applies per transaction: the runtime's batch, or fewer for
// a projection whose applies call out (a webhook), so that a batch fits its bound.

#include <gtest/gtest.h>

#include <chrono>

#include "projections/runtime.hpp"

namespace ordo::projections {
namespace {

using namespace std::chrono_literals;

class Slow final : public Projection {
   public:
    explicit Slow(std::chrono::milliseconds worst) : worst_{worst} {}
    std::string name() const override { return "slow"; }
    std::vector<std::string> categories() const override { return {}; }
    void apply(ReadModelTxn&, const eventstore::RecordedEvent&) override {}
    std::chrono::milliseconds worst_apply() const override { return worst_; }

   private:
    std::chrono::milliseconds worst_;
};

TEST(ProjectionBatch, ADatabaseOnlyProjectionTakesTheWholeBatch) {
    EXPECT_EQ(batch_for(Slow{0ms}, 500, 60s), 500U);
}

TEST(ProjectionBatch, ASlowCallerTakesWhatFitsInHalfTheBound) {
    // 5 s per call at worst, 60 s bound: six calls take at most 30 s.
    EXPECT_EQ(batch_for(Slow{5s}, 500, 60s), 6U);
    EXPECT_LE(6 * 5s, 60s / 2);
    EXPECT_EQ(batch_for(Slow{100ms}, 500, 60s), 300U);
    EXPECT_EQ(batch_for(Slow{10ms}, 500, 60s), 500U);  // never more than the batch
}

TEST(ProjectionBatch, AtLeastOneEventEvenWhenOneCallMayOutlastTheBound) {
    EXPECT_EQ(batch_for(Slow{120s}, 500, 60s), 1U);
}

}  // namespace
}  // namespace ordo::projections
