// Consistency tokens (X-Consistency-Token, ordo-order-key): parse never crashes, and what
// it accepts prints back as a token that parses to the same checkpoint.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "eventstore/event_store.hpp"
#include "fuzz/fuzz.hpp"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
    std::string_view text{reinterpret_cast<const char*>(data), size};
    auto parsed = ordo::eventstore::Checkpoint::parse_token(text);
    if (!parsed) return 0;
    auto again = ordo::eventstore::Checkpoint::parse_token(parsed->token());
    ORDO_FUZZ_CHECK(again && *again == *parsed);
    return 0;
}
