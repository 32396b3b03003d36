// The Command API's bodies read into commands, without a server or a database.
#include <gtest/gtest.h>

#include "command/validation.hpp"

namespace ordo::command {
namespace {

using nlohmann::json;

std::vector<std::string> fields_of(const std::vector<FieldError>& errors) {
    std::vector<std::string> out;
    for (const auto& e : errors) out.push_back(e.field);
    return out;
}

template <class Command>
std::vector<std::string> refused(const Decoded<Command>& decoded) {
    auto* errors = std::get_if<std::vector<FieldError>>(&decoded);
    return errors ? fields_of(*errors) : std::vector<std::string>{};
}

TEST(CommandDecoding, AReceiptAndADepositCarryTheirPathIds) {
    auto receipt = decode_receive_stock("sku-1", {{"quantity", 3}});
    EXPECT_EQ(std::get<domain::inventory::ReceiveStock>(receipt),
              (domain::inventory::ReceiveStock{"sku-1", 3}));
    auto deposit = decode_deposit("acct-1", {{"amount", 100}});
    EXPECT_EQ(std::get<domain::payments::Deposit>(deposit),
              (domain::payments::Deposit{"acct-1", 100}));
    EXPECT_EQ(refused(decode_receive_stock("sku-1", {{"quantity", 0}, {"qty", 1}})),
              (std::vector<std::string>{"quantity", "qty"}));
    EXPECT_EQ(refused(decode_deposit("acct-1", json::object())),
              (std::vector<std::string>{"amount"}));
    // Found by fuzzing: an empty field name is named too.
    EXPECT_EQ(refused(decode_deposit("acct-1", {{"amount", 1}, {"", 1}})),
              (std::vector<std::string>{"\"\""}));
}

TEST(CommandDecoding, AnOrderWithoutAnIdGetsANewOne) {
    const json body = {{"customer_id", "c-1"},
                       {"account_id", "a-1"},
                       {"lines", {{{"sku", "s-1"}, {"quantity", 2}, {"unit_price", 5}}}}};
    auto order =
        std::get<domain::orders::PlaceOrder>(decode_place_order(body, [] { return "new-1"; }));
    EXPECT_EQ(order.order_id, "new-1");
    EXPECT_EQ(order.lines, (std::vector<domain::orders::OrderLine>{{"s-1", 2, 5}}));
    auto named = body;
    named["order_id"] = "o-7";
    EXPECT_EQ(std::get<domain::orders::PlaceOrder>(decode_place_order(named, [] { return "x"; }))
                  .order_id,
              "o-7");
}

// Clients from before prices named a currency send none: their orders are in euros; a
// currency given applies to every line, and must be an ISO 4217 code.
TEST(CommandDecoding, AnOrdersCurrencyIsOptionalAndAppliesToEveryLine) {
    json body = {{"customer_id", "c-1"},
                 {"account_id", "a-1"},
                 {"lines",
                  {{{"sku", "s-1"}, {"quantity", 2}, {"unit_price", 5}},
                   {{"sku", "s-2"}, {"quantity", 1}, {"unit_price", 7}}}}};
    auto euros =
        std::get<domain::orders::PlaceOrder>(decode_place_order(body, [] { return "o-1"; }));
    EXPECT_EQ(euros.lines[0].currency, "EUR");
    EXPECT_EQ(euros.lines[1].currency, "EUR");
    body["currency"] = "USD";
    auto dollars =
        std::get<domain::orders::PlaceOrder>(decode_place_order(body, [] { return "o-1"; }));
    EXPECT_EQ(dollars.lines[0].currency, "USD");
    EXPECT_EQ(dollars.lines[1].currency, "USD");
    body["currency"] = "usd";
    EXPECT_EQ(refused(decode_place_order(body, [] { return "x"; })),
              (std::vector<std::string>{"currency"}));
}

TEST(CommandDecoding, AnOrderNamesEveryBadFieldAtOnce) {
    const json body = {{"customer_id", "c 1"},
                       {"lines",
                        {{{"sku", "s-1"}, {"quantity", 0}, {"unit_price", 5}},
                         {{"sku", "s-1"}, {"quantity", 1}, {"unit_price", -1}},
                         "not an object"}}};
    EXPECT_EQ(refused(decode_place_order(body, [] { return "x"; })),
              (std::vector<std::string>{"customer_id", "account_id", "lines[0].quantity",
                                        "lines[1].unit_price", "lines[1].sku", "lines[2]"}));
}

TEST(CommandDecoding, ACancellationReadsItsIfMatch) {
    auto plain = std::get<Cancellation>(decode_cancellation("o-1", json::object(), std::nullopt));
    EXPECT_EQ(plain.command, (domain::orders::RequestCancellation{"o-1", ""}));
    EXPECT_EQ(plain.if_match, std::nullopt);
    auto any = std::get<Cancellation>(decode_cancellation("o-1", {{"reason", "late"}}, "*"));
    EXPECT_EQ(any.command.reason, "late");
    EXPECT_EQ(any.if_match, std::nullopt);
    EXPECT_EQ(std::get<Cancellation>(decode_cancellation("o-1", json::object(), "\"3\"")).if_match,
              3);
    for (const char* bad : {"3", "\"\"", "\"-1\"", "\"3x\"", "\"99999999999999999999\""}) {
        EXPECT_EQ(refused(decode_cancellation("o-1", json::object(), bad)),
                  (std::vector<std::string>{"If-Match"}))
            << bad;
    }
}

}  // namespace
}  // namespace ordo::command
