// The test stack's NATS users: the administrator that tests connect as, each service's own
// user, and the environment of a service a test spawns.
#pragma once

#include <map>
#include <string>

#include "platform/nats/nats.hpp"

// The test stack's NATS users. Tests name their streams, subjects and buckets after
// themselves so that they can run in any order; the services' users of the stack may touch
// only the default names (deploy/stack.sh), so test clients and the services that tests
// spawn connect as the stack's administrator (Process keeps a shell's per-service settings
// from reaching them). tests/integration/nats_security_test.cpp
// holds each service's own user to its permissions.
namespace ordo::testing {

// The administrator: may do anything.
platform::nats::ClientSettings nats_admin();

// The administrator's URL (with its password) and the stack's CA file, for the environment
// of a spawned service: ORDO_NATS_URL and ORDO_NATS_CA_FILE.
std::string nats_admin_url();
std::string nats_ca_file();

class TestDatabase;

// The environment of a service a test spawns: every service's database URL on `db` (each its
// own role) and NATS as the administrator over the stack's TLS.
std::map<std::string, std::string> spawned_service_env(const TestDatabase& db);

// One service's own user (command, query, relay, projector, sagas), as stack.env gives it.
platform::nats::ClientSettings nats_user(const std::string& service);

}  // namespace ordo::testing
