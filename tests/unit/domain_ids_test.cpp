// Domain ids: the allowed alphabet and length, the two dot names refused, stream names.

#include <gtest/gtest.h>

#include <string>

#include "domain/ids.hpp"

namespace ordo::domain {
namespace {

TEST(DomainIds, AcceptsTheIdAlphabet) {
    EXPECT_TRUE(is_valid_id("a"));
    EXPECT_TRUE(is_valid_id("sku-1"));
    EXPECT_TRUE(is_valid_id("Order_2024.01-XYZ"));
    EXPECT_TRUE(is_valid_id("0123456789"));
    EXPECT_TRUE(is_valid_id("550e8400-e29b-41d4-a716-446655440000"));
    EXPECT_TRUE(is_valid_id(std::string(64, 'x')));
}

TEST(DomainIds, RejectsEmptyLongAndForeignCharacters) {
    EXPECT_FALSE(is_valid_id(""));
    EXPECT_FALSE(is_valid_id(std::string(65, 'x')));
    for (std::string_view id : {"a b", "a/b", "a*b", "a>b", "a:b", "é", "a\nb", "a+b", "a%2F"}) {
        EXPECT_FALSE(is_valid_id(id)) << id;
    }
    EXPECT_FALSE(is_valid_id(std::string_view("a\0b", 3)));
}

TEST(DomainIds, RejectsTheTwoDotNamesAURLCannotCarry) {
    EXPECT_FALSE(is_valid_id("."));
    EXPECT_FALSE(is_valid_id(".."));
    EXPECT_TRUE(is_valid_id("..."));
    EXPECT_TRUE(is_valid_id(".a"));
}

TEST(DomainIds, NamesStreamsByCategory) {
    EXPECT_EQ(inventory_stream("sku-1"), "inventory-sku-1");
    EXPECT_EQ(account_stream("acct-1"), "account-acct-1");
    EXPECT_EQ(order_stream("order-1"), "order-order-1");
}

static_assert(is_valid_id("compile-time.ok_1"));
static_assert(!is_valid_id("no spaces"));

}  // namespace
}  // namespace ordo::domain
