// ClientSettings applied to cnats options: the URLs, and TLS with its CA and expected host.
#pragma once

#include <nats/nats.h>

#include "platform/nats/nats.hpp"

// The one translation of ClientSettings into cnats options, for the adapters built on cnats.
namespace ordo::platform::nats {

// Sets the URL(s), and for TLS the CA to trust and the host name the server's certificate
// must carry (cnats checks the name only when told one). Throws std::invalid_argument for
// settings that can never work: a CA file cnats cannot load, a URL without a host.
void apply(natsOptions* options, const ClientSettings& settings);

}  // namespace ordo::platform::nats
