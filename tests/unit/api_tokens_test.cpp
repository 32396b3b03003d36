// API tokens: SHA-256, scopes, the token file's lines and matching, rotation, `ordo token new`.

#include "platform/http/api_tokens.hpp"

#include <gtest/gtest.h>

#include <string>

namespace ordo::platform::http {
namespace {

const std::string kHashOfAbc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";

TEST(Sha256, MatchesTheStandardTestVector) {
    EXPECT_EQ(to_hex(sha256("abc")), kHashOfAbc);
    EXPECT_EQ(to_hex(sha256("")),
              "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(Scopes, ParseAndNameTheFourScopes) {
    EXPECT_EQ(parse_scopes("commands"), static_cast<std::uint8_t>(Access::commands));
    EXPECT_EQ(parse_scopes("read,admin"),
              static_cast<std::uint8_t>(Access::read) | static_cast<std::uint8_t>(Access::admin));
    EXPECT_EQ(scope_names(*parse_scopes("admin,commands,read")), "commands,read,admin");
    EXPECT_EQ(parse_scopes("telemetry"), static_cast<std::uint8_t>(Access::telemetry));
    EXPECT_EQ(scope_names(*parse_scopes("telemetry,read")), "read,telemetry");
    EXPECT_EQ(access_name(Access::telemetry), "telemetry");
    for (const char* bad : {"", "write", "read,", ",read", "read,,admin", "Read", "open"}) {
        EXPECT_EQ(parse_scopes(bad), std::nullopt) << bad;
    }
}

TEST(TokenSet, ReadsNamesScopesAndHashesSkippingCommentsAndBlankLines) {
    auto set = TokenSet::parse(
        "# issued 2026-12-04\n"
        "\n"
        "loader commands " +
        kHashOfAbc +
        "   # the CI loader\n"
        "  ops\tread,admin\t" +
        to_hex(sha256("ops-token")) + "\r\n");
    ASSERT_EQ(set.entries().size(), 2U);
    EXPECT_EQ(set.entries()[0].name, "loader");
    EXPECT_EQ(set.entries()[0].scopes, static_cast<std::uint8_t>(Access::commands));
    EXPECT_EQ(set.entries()[1].name, "ops");

    auto loader = set.authenticate("Bearer abc");
    ASSERT_TRUE(loader);
    EXPECT_EQ(loader->name, "loader");
    EXPECT_TRUE(loader->may(Access::commands));
    EXPECT_FALSE(loader->may(Access::read));
    EXPECT_FALSE(loader->may(Access::admin));
    EXPECT_TRUE(loader->may(Access::open));
    auto ops = set.authenticate("BEARER  ops-token ");
    ASSERT_TRUE(ops);
    EXPECT_EQ(ops->name, "ops");
    EXPECT_TRUE(ops->may(Access::admin));
    EXPECT_FALSE(ops->may(Access::commands));
}

TEST(TokenSet, RecognisesOnlyABearerTokenItKnows) {
    auto set = TokenSet::parse("loader commands " + kHashOfAbc + "\n");
    for (std::optional<std::string_view> header :
         std::initializer_list<std::optional<std::string_view>>{
             std::nullopt, "", "Bearer", "Bearer ", "Bearer abcd", "Bearer ab", "Basic abc", "abc",
             "Bearerabc", "Token abc"}) {
        EXPECT_FALSE(set.authenticate(header)) << header.value_or("(none)");
    }
    const std::string hash_as_token = "Bearer " + kHashOfAbc;
    EXPECT_FALSE(set.authenticate(hash_as_token));
    EXPECT_FALSE(TokenSet{}.authenticate("Bearer abc"));
}

TEST(TokenSet, RefusesEachBadLineNamingItsNumber) {
    const std::string hash = kHashOfAbc;
    struct Bad {
        std::string text;
        std::size_t line;
        std::string says;
    };
    for (const auto& bad : std::vector<Bad>{
             {"a read\n", 1, "three fields"},
             {"# ok\na read " + hash + " extra\n", 2, "three fields"},
             {"a b read " + hash + "\n", 1, "three fields"},
             {"bad/name read " + hash + "\n", 1, "a name is"},
             {".. read " + hash + "\n", 1, "a name is"},
             {std::string(65, 'n') + " read " + hash + "\n", 1, "a name is"},
             {"a write " + hash + "\n", 1, "scopes are"},
             {"a read,, " + hash + "\n", 1, "scopes are"},
             {"a read my-secret-token\n", 1, "not the token"},
             {"a read " + hash.substr(1) + "\n", 1, "64 hex digits"},
             {"a read " + hash + "\nb admin " + hash + "\n", 2, "the same token as a"},
             {"a read " + hash + "\na admin " + to_hex(sha256("x")) + "\n", 2, "other scopes"},
             {"saga commands " + hash + "\n", 1, "a name is"},
             {"anonymous read " + hash + "\n", 1, "a name is"},
         }) {
        SCOPED_TRACE(bad.text);
        try {
            TokenSet::parse(bad.text);
            ADD_FAILURE() << "parsed";
        } catch (const TokenFileError& e) {
            EXPECT_EQ(e.line, bad.line);
            EXPECT_NE(std::string(e.what()).find(bad.says), std::string::npos) << e.what();
        }
    }
}

TEST(TokenSet, ANameMayHoldTwoTokensWhileOneReplacesTheOther) {
    auto set = TokenSet::parse("ci commands " + to_hex(sha256("old")) + "\n" + "ci commands " +
                               to_hex(sha256("new")) + "\n");
    ASSERT_TRUE(set.authenticate("Bearer old"));
    ASSERT_TRUE(set.authenticate("Bearer new"));
    EXPECT_EQ(set.authenticate("Bearer old")->name, "ci");
    EXPECT_EQ(set.authenticate("Bearer new")->name, "ci");
}

TEST(TokenSet, UppercaseHexIsTheSameHash) {
    std::string upper = kHashOfAbc;
    for (auto& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_TRUE(TokenSet::parse("a read " + upper).authenticate("Bearer abc"));
}

TEST(NewToken, PrintsAFreshTokenAndTheLineThatAdmitsIt) {
    auto first = new_token("ci-loader", *parse_scopes("commands,read"));
    auto second = new_token("ci-loader", *parse_scopes("commands,read"));
    EXPECT_NE(first.token, second.token);
    EXPECT_EQ(first.token.rfind("ordo_", 0), 0U);
    EXPECT_EQ(first.token.size(), 5U + 43U);
    EXPECT_EQ(first.line.find(first.token), std::string::npos);  // the line never holds it
    auto set = TokenSet::parse(first.line + "\n");
    auto caller = set.authenticate("Bearer " + first.token);
    ASSERT_TRUE(caller);
    EXPECT_EQ(caller->name, "ci-loader");
    EXPECT_TRUE(caller->may(Access::commands));
    EXPECT_TRUE(caller->may(Access::read));
    EXPECT_FALSE(caller->may(Access::admin));
    EXPECT_FALSE(set.authenticate("Bearer " + second.token));

    EXPECT_THROW(new_token("bad name", *parse_scopes("read")), std::invalid_argument);
    EXPECT_THROW(new_token("ok", 0), std::invalid_argument);
}

}  // namespace
}  // namespace ordo::platform::http
