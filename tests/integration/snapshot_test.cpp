// Snapshots: long streams are snapshotted and load from them; an unreadable one is ignored and
// replaced by the next command.

#include <gtest/gtest.h>

#include <pqxx/pqxx>

#include "command/aggregate.hpp"
#include "tests/support/command_stack.hpp"

namespace ordo::testing {
namespace {

std::int64_t snapshot_version(CommandStack& stack, const std::string& stream) {
    return stack.pool().transact<pqxx::nontransaction>([&](auto& tx) {
        auto r = tx.exec_params("SELECT stream_version FROM ordo.snapshots WHERE stream_id = $1",
                                stream);
        return r.empty() ? std::int64_t{0} : r[0][0].template as<std::int64_t>();
    });
}

domain::CommandOutcome reserve(CommandStack& stack, const std::string& order,
                               std::int64_t quantity) {
    return stack.service().send("reserve-" + order,
                                domain::inventory::ReserveStock{"sku-s", order, quantity}, {});
}

// The rejection's code; empty when the reservation succeeded.
std::string rejection_code(const domain::CommandOutcome& outcome) {
    if (const auto* no = std::get_if<domain::CommandRejected>(&outcome)) return no->reason.code;
    return "";
}

TEST(Snapshots, LongStreamsAreSnapshottedAndLoadFromTheSnapshot) {
    CommandStack stack;
    auto client = stack.client();
    for (int i = 0; i < 250; ++i) {
        ASSERT_EQ(client.post_json("/v1/inventory/sku-s/receipts", {{"quantity", 2}}).status, 200);
    }
    EXPECT_EQ(snapshot_version(stack, "inventory-sku-s"), 200);

    // State through the snapshot plus the 50 events after it: 500 on hand.
    auto too_many = reserve(stack, "o-big", 501);
    EXPECT_EQ(rejection_code(too_many), "insufficient_stock");
    auto fits = reserve(stack, "o-fits", 500);
    ASSERT_TRUE(std::holds_alternative<domain::CommandSucceeded>(fits));
    EXPECT_EQ(std::get<domain::CommandSucceeded>(fits).receipt.version, 251);
}

TEST(Snapshots, AnUnreadableSnapshotIsIgnored) {
    CommandStack stack;
    auto client = stack.client();
    for (int i = 0; i < 100; ++i) {
        ASSERT_EQ(client.post_json("/v1/inventory/sku-s/receipts", {{"quantity", 1}}).status, 200);
    }
    ASSERT_EQ(snapshot_version(stack, "inventory-sku-s"), 100);
    stack.pool().transact(
        [](pqxx::work& tx) { tx.exec("UPDATE ordo.snapshots SET state = '{\"garbage\": true}'"); });
    auto too_many = reserve(stack, "o-1", 101);
    EXPECT_EQ(rejection_code(too_many), "insufficient_stock");
    EXPECT_TRUE(std::holds_alternative<domain::CommandSucceeded>(reserve(stack, "o-2", 100)));
}

TEST(Snapshots, AStreamWithoutAUsableSnapshotIsSnapshottedByItsNextCommand) {
    // A process that keeps no fold of the stream, as one just started: one that keeps its
    // own fold never reads the stream from its start again (docs/architecture.md, "Kept
    // folds"), and leaves the snapshot to the next mark.
    CommandStack stack{{}, 16, {.kept_folds = 0}};
    auto client = stack.client();
    for (int i = 0; i < 150; ++i) {
        ASSERT_EQ(client.post_json("/v1/inventory/sku-s/receipts", {{"quantity", 1}}).status, 200);
    }
    ASSERT_EQ(snapshot_version(stack, "inventory-sku-s"), 100);
    // As a snapshot of an earlier state format reads: not at all.
    stack.pool().transact(
        [](pqxx::work& tx) { tx.exec("UPDATE ordo.snapshots SET schema_version = 1"); });
    // The next command folds all 150 events once, and leaves a snapshot of the current
    // format at its version, though 151 is no multiple of 100.
    ASSERT_EQ(client.post_json("/v1/inventory/sku-s/receipts", {{"quantity", 1}}).status, 200);
    EXPECT_EQ(snapshot_version(stack, "inventory-sku-s"), 151);
    EXPECT_EQ(stack.pool().transact<pqxx::nontransaction>([](auto& tx) {
        return tx.exec1("SELECT schema_version FROM ordo.snapshots")[0].template as<int>();
    }),
              eventstore::kSnapshotFormat);
    // And the state it holds is the whole history's: 151 on hand.
    auto too_many = reserve(stack, "o-1", 152);
    ASSERT_TRUE(std::holds_alternative<domain::CommandRejected>(too_many));
    EXPECT_TRUE(std::holds_alternative<domain::CommandSucceeded>(reserve(stack, "o-2", 151)));
}

}  // namespace
}  // namespace ordo::testing
