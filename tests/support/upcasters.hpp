#pragma once

// The binary's upcaster registry for tests, which read events as the binary does.

#include "eventstore/upcasting.hpp"

namespace ordo::testing {

// app::event_upcasters(), built once for the test process and only read after.
const eventstore::Upcasters& upcasters();

}  // namespace ordo::testing
