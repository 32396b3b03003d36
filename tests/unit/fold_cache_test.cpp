// The command side's cache of folded streams: bounded, least recently used out first, the
// last fold kept for a stream replacing the one before.
#include <gtest/gtest.h>

#include <memory>
#include <string>

#include "command/fold_cache.hpp"

namespace ordo::command {
namespace {

std::shared_ptr<const eventstore::KnownFold> fold(std::int64_t version) {
    return std::make_shared<const eventstore::KnownFold>(
        eventstore::KnownFold{version, "event " + std::to_string(version),
                              std::string{"state at "} + std::to_string(version)});
}

std::int64_t version_of(FoldCache& cache, const std::string& stream) {
    auto found = cache.find(stream);
    return found ? found->version : -1;
}

TEST(FoldCache, DropsTheLeastRecentlyUsedStreamWhenFull) {
    FoldCache cache{2};
    cache.keep("a", fold(1));
    cache.keep("b", fold(1));
    EXPECT_EQ(version_of(cache, "a"), 1);  // a is now the most recently used
    cache.keep("c", fold(1));
    EXPECT_EQ(cache.size(), 2u);
    EXPECT_EQ(version_of(cache, "b"), -1);
    EXPECT_EQ(version_of(cache, "a"), 1);
    EXPECT_EQ(version_of(cache, "c"), 1);
}

TEST(FoldCache, TheLastFoldKeptReplacesTheOneBefore) {
    FoldCache cache{4};
    cache.keep("a", fold(5));
    cache.keep("a", fold(3));
    EXPECT_EQ(version_of(cache, "a"), 3);
    cache.keep("a", fold(6));
    auto found = cache.find("a");
    ASSERT_TRUE(found);
    EXPECT_EQ(found->version, 6);
    EXPECT_EQ(std::any_cast<std::string>(found->state), "state at 6");
    EXPECT_EQ(cache.size(), 1u);
}

TEST(FoldCache, KeepsNothingAtCapacityZero) {
    FoldCache cache{0};
    cache.keep("a", fold(1));
    EXPECT_EQ(cache.size(), 0u);
    EXPECT_FALSE(cache.find("a"));
}

}  // namespace
}  // namespace ordo::command
