// The internal commands' JSON codec (both ways, and its refusals) and their target streams.

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "domain/commands.hpp"

namespace ordo::domain {
namespace {

using nlohmann::json;

// Each command with the exact text saga streams already hold for it: the stored form may
// never change, or existing processes stop loading.
const std::vector<std::pair<InternalCommand, std::string>> kStored = {
    {inventory::ReserveStock{"sku-1", "o-1", 2},
     R"({"order_id":"o-1","quantity":2,"sku":"sku-1","type":"ReserveStock"})"},
    {inventory::ReleaseReservation{"sku-1", "o-1"},
     R"({"order_id":"o-1","sku":"sku-1","type":"ReleaseReservation"})"},
    {inventory::CommitReservation{"sku-1", "o-1"},
     R"({"order_id":"o-1","sku":"sku-1","type":"CommitReservation"})"},
    {payments::AuthorizePayment{"a-1", "o-1", 250},
     R"({"account_id":"a-1","amount":250,"order_id":"o-1","type":"AuthorizePayment"})"},
    {payments::VoidAuthorization{"a-1", "o-1"},
     R"({"account_id":"a-1","order_id":"o-1","type":"VoidAuthorization"})"},
    {payments::CapturePayment{"a-1", "o-1"},
     R"({"account_id":"a-1","order_id":"o-1","type":"CapturePayment"})"},
    {orders::ConfirmOrder{"o-1"}, R"({"order_id":"o-1","type":"ConfirmOrder"})"},
    {orders::CancelOrder{"o-1", "insufficient_stock"},
     R"({"order_id":"o-1","reason":"insufficient_stock","type":"CancelOrder"})"},
};

std::string refusal(const std::variant<InternalCommand, UnreadableCommand>& decoded) {
    const auto* refused = std::get_if<UnreadableCommand>(&decoded);
    return refused ? refused->reason : "(decoded)";
}

TEST(InternalCommandCodec, EncodesEveryCommandInItsStoredForm) {
    ASSERT_EQ(kStored.size(), std::variant_size_v<InternalCommand>);
    for (const auto& [command, text] : kStored) {
        EXPECT_EQ(encode_command(command).dump(), text);
    }
}

TEST(InternalCommandCodec, DecodesTheStoredFormOfEveryCommand) {
    for (const auto& [command, text] : kStored) {
        const auto decoded = decode_command(json::parse(text));
        ASSERT_TRUE(std::holds_alternative<InternalCommand>(decoded)) << refusal(decoded);
        EXPECT_EQ(std::get<InternalCommand>(decoded), command) << text;
    }
}

TEST(InternalCommandCodec, NamesEachCommandByItsStructsType) {
    for (const auto& [command, text] : kStored) {
        const auto type = std::visit([](const auto& c) { return std::string{c.kType}; }, command);
        EXPECT_EQ(encode_command(command).at("type"), type);
    }
}

TEST(InternalCommandCodec, IgnoresFieldsItDoesNotKnow) {
    const auto decoded =
        decode_command(json{{"type", "ConfirmOrder"}, {"order_id", "o-1"}, {"added_later", true}});
    ASSERT_TRUE(std::holds_alternative<InternalCommand>(decoded)) << refusal(decoded);
    EXPECT_EQ(std::get<InternalCommand>(decoded), InternalCommand{orders::ConfirmOrder{"o-1"}});
}

TEST(InternalCommandCodec, RefusesAnUnknownTypeByName) {
    EXPECT_EQ(refusal(decode_command(json{{"type", "ReceiveStock"}, {"sku", "s"}})),
              "unknown command type \"ReceiveStock\"");
}

TEST(InternalCommandCodec, RefusesACommandWithoutAType) {
    EXPECT_EQ(refusal(decode_command(json{{"order_id", "o-1"}})),
              "a command needs a string \"type\"");
    EXPECT_EQ(refusal(decode_command(json{{"type", 3}, {"order_id", "o-1"}})),
              "a command needs a string \"type\"");
    EXPECT_EQ(refusal(decode_command(json::array())), "a command is a JSON object");
}

TEST(InternalCommandCodec, RefusesMissingOrMistypedFields) {
    const std::string expected = "ReserveStock: a field is missing or mistyped";
    EXPECT_EQ(
        refusal(decode_command(json{{"type", "ReserveStock"}, {"sku", "s"}, {"order_id", "o"}})),
        expected);
    EXPECT_EQ(refusal(decode_command(json{
                  {"type", "ReserveStock"}, {"sku", "s"}, {"order_id", "o"}, {"quantity", 1.5}})),
              expected);
    EXPECT_EQ(refusal(decode_command(
                  json{{"type", "ReserveStock"}, {"sku", 1}, {"order_id", "o"}, {"quantity", 1}})),
              expected);
    EXPECT_EQ(refusal(decode_command(json{{"type", "CancelOrder"}, {"order_id", "o"}})),
              "CancelOrder: a field is missing or mistyped");
}

TEST(InternalCommandTarget, IsTheStreamOfTheAggregateThatDecidesIt) {
    const std::vector<std::string> streams = {
        "inventory-sku-1", "inventory-sku-1", "inventory-sku-1", "account-a-1",
        "account-a-1",     "account-a-1",     "order-o-1",       "order-o-1"};
    ASSERT_EQ(streams.size(), kStored.size());
    for (std::size_t i = 0; i < streams.size(); ++i) {
        EXPECT_EQ(target_stream(kStored[i].first), streams[i]) << kStored[i].second;
    }
}

}  // namespace
}  // namespace ordo::domain
