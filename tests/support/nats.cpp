// NATS settings read from the test stack: the administrator's URL and CA file, a service's
// own URL, and the environment handed to spawned services.
#include "tests/support/nats.hpp"

#include <cctype>

#include "tests/support/test_database.hpp"

namespace ordo::testing {

std::string nats_admin_url() {
    return stack_setting("ORDO_NATS_ADMIN_URL");
}

std::string nats_ca_file() {
    return stack_setting("ORDO_NATS_CA_FILE");
}

platform::nats::ClientSettings nats_admin() {
    return {.url = nats_admin_url(), .ca_file = nats_ca_file()};
}

platform::nats::ClientSettings nats_user(const std::string& service) {
    std::string name = "ORDO_";
    for (char c : service) name.push_back(static_cast<char>(std::toupper(c)));
    name += "_NATS_URL";
    return {.url = stack_setting(name.c_str()), .ca_file = nats_ca_file()};
}

std::map<std::string, std::string> spawned_service_env(const TestDatabase& db) {
    auto env = db.service_env();
    env["ORDO_NATS_URL"] = nats_admin_url();
    env["ORDO_NATS_CA_FILE"] = nats_ca_file();
    return env;
}

}  // namespace ordo::testing
