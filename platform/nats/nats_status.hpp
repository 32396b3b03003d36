// cnats status codes read one way for every adapter: described, and transient or not.
#pragma once

#include <string>

#include <nats/nats.h>

// The one reading of cnats status codes for the adapters built on cnats.
namespace ordo::platform::nats_status {

// The status with cnats' last error detail, when that detail belongs to it.
std::string describe(natsStatus status);

// Connection trouble that a retry may cure, as opposed to a refusal.
bool is_transient(natsStatus status);

}  // namespace ordo::platform::nats_status
