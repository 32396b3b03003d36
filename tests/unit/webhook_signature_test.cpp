// Webhook signatures: the published test vector, tampering, rotation, secrets, base64.

#include "projections/webhook_signature.hpp"

#include <string>
#include <vector>

#include <gtest/gtest.h>

#include "platform/core/errors.hpp"

namespace ordo::projections::webhook_signature {
namespace {

// The test vector the Standard Webhooks specification publishes with its reference
// libraries: a signature any receiver library computes the same way.
constexpr const char* kSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
constexpr const char* kId = "msg_p5jXN8AQM9LWM0D4loKWxJek";
constexpr std::int64_t kTimestamp = 1614265330;
constexpr const char* kBody = R"({"test": 2432232314})";
constexpr const char* kSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

TEST(WebhookSignature, ReproducesThePublishedTestVector) {
    const auto keys = parse_secrets(kSecret);
    ASSERT_EQ(keys.size(), 1u);
    EXPECT_EQ(sign(keys[0], kId, kTimestamp, kBody), kSignature);
}

TEST(WebhookSignature, AnyChangeOfIdTimestampOrBodyChangesTheSignature) {
    const auto key = parse_secrets(kSecret)[0];
    EXPECT_NE(sign(key, "msg_other", kTimestamp, kBody), kSignature);
    EXPECT_NE(sign(key, kId, kTimestamp + 1, kBody), kSignature);
    EXPECT_NE(sign(key, kId, kTimestamp, R"({"test": 2432232315})"), kSignature);
}

TEST(WebhookSignature, SeveralSecretsSignEachForRotation) {
    const auto keys = parse_secrets(std::string("# old, then new\n") + kSecret +
                                    "\n\n  whsec_c2Vjb25kLXNlY3JldC1vZi10d2VudHktZm91cg==  \n");
    ASSERT_EQ(keys.size(), 2u);
    EXPECT_EQ(keys[1], "second-secret-of-twenty-four");
    const auto header = signature_header(keys, kId, kTimestamp, kBody);
    EXPECT_EQ(header, std::string(kSignature) + " " + sign(keys[1], kId, kTimestamp, kBody));
}

TEST(WebhookSignature, RefusesSecretsThatAreNotWhsecBase64OfAProperLength) {
    for (const std::string bad :
         {"", "# only a comment\n", "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "whsec_",
          "whsec_not base64!", "whsec_c2hvcnQ=", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS"}) {
        EXPECT_THROW(parse_secrets(bad), platform::InvalidInput) << bad;
    }
    try {
        parse_secrets(std::string(kSecret) + "\nwhsec_c2hvcnQ=\n");
        ADD_FAILURE();
    } catch (const platform::InvalidInput& e) {
        EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
}

TEST(WebhookSignature, Base64RoundTripsAndRefusesMalformedText) {
    std::string out;
    for (const std::string& bytes :
         std::vector<std::string>{"a", "ab", "abc", "abcd", std::string("\0\xff\x10", 3)}) {
        ASSERT_TRUE(base64_decode(base64_encode(bytes), out));
        EXPECT_EQ(out, bytes);
    }
    EXPECT_EQ(base64_encode("ab"), "YWI=");
    for (const std::string bad : {"YWI", "Y=I=", "YW-=", "===="}) {
        EXPECT_FALSE(base64_decode(bad, out)) << bad;
    }
}

}  // namespace
}  // namespace ordo::projections::webhook_signature
