// The stack's PostgreSQL takes TCP connections only over TLS, and the services' URLs
// (sslmode=verify-full with the stack's CA) verify that the server is the stack's.
#include <gtest/gtest.h>

#include <stdlib.h>

#include <filesystem>
#include <string>

#include <pqxx/pqxx>

#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {
namespace {

// The migrator's URL of the stack with `query` in place of its own.
std::string migrator_url_with(const std::string& query) {
    auto url = stack_setting("ORDO_MIGRATOR_URL");
    return url.substr(0, url.find('?')) + "?connect_timeout=3&" + query;
}

std::string connect_error(const std::string& url) {
    try {
        pqxx::connection conn{url};
        return {};
    } catch (const pqxx::broken_connection& e) {
        return e.what();
    }
}

TEST(PostgresTls, TheStackUrlsVerifyTheServerAndSpeakTls) {
    auto url = stack_setting("ORDO_MIGRATOR_URL");
    EXPECT_NE(url.find("sslmode=verify-full"), std::string::npos) << "URL lacks verify-full";
    pqxx::connection conn{url};
    pqxx::nontransaction tx{conn};
    auto row = tx.exec1("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()");
    EXPECT_TRUE(row[0].as<bool>());
    auto version = row[1].as<std::string>();
    EXPECT_TRUE(version == "TLSv1.2" || version == "TLSv1.3") << version;
}

TEST(PostgresTls, AConnectionWithoutTlsIsRefused) {
    auto error = connect_error(migrator_url_with("sslmode=disable"));
    EXPECT_NE(error.find("no encryption"), std::string::npos) << error;
}

TEST(PostgresTls, ACertificateFromAnotherAuthorityFailsVerification) {
    // A CA of our own, which did not sign the server's certificate.
    auto pattern = (std::filesystem::temp_directory_path() / "ordo-tls-test-XXXXXX").string();
    ASSERT_NE(::mkdtemp(pattern.data()), nullptr);
    std::filesystem::path folder{pattern};
    auto ca = (folder / "other-ca.crt").string();
    ASSERT_EQ(run({"/usr/bin/openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                   "ec_paramgen_curve:prime256v1", "-noenc", "-keyout",
                   (folder / "other-ca.key").string(), "-out", ca, "-days", "1", "-subj",
                   "/CN=another authority"}),
              0);
    auto error = connect_error(migrator_url_with("sslmode=verify-full&sslrootcert=" + ca));
    std::filesystem::remove_all(folder);
    EXPECT_NE(error.find("certificate verify failed"), std::string::npos) << error;
}

TEST(PostgresTls, AServerNamedOtherwiseThanItsCertificateFailsVerification) {
    // The right server at the right address, under a name its certificate does not carry.
    auto url =
        migrator_url_with("sslmode=verify-full&sslrootcert=" + stack_setting("PGSSLROOTCERT"));
    auto at = url.find('@');
    auto port_colon = url.find(':', at);
    auto renamed = url.substr(0, at + 1) + "ordo-not-this-host" + url.substr(port_colon);
    auto error = connect_error(renamed + "&hostaddr=127.0.0.1");
    EXPECT_NE(error.find("does not match host name"), std::string::npos) << error;
}

}  // namespace
}  // namespace ordo::testing
