// Which partition a stream belongs to: the FNV-1a hash of its id modulo the partition count,
// fixed forever and computed the same way in SQL.
#pragma once

#include <cstdint>
#include <string_view>

namespace ordo::platform {

// FNV-1a, 32 bit, over the bytes of a stream id: the hash that places a stream in a
// partition (hash mod P). Fixed forever: every language that routes Ordo events computes
// it the same way, and migrations/0003_read_side.sql has the same function in SQL.
constexpr std::uint32_t stream_hash(std::string_view stream) {
    std::uint32_t h = 2166136261u;
    for (char c : stream) {
        h ^= static_cast<std::uint8_t>(c);
        h *= 16777619u;
    }
    return h;
}

constexpr int partition_of(std::string_view stream, int partitions) {
    return static_cast<int>(stream_hash(stream) % static_cast<std::uint32_t>(partitions));
}

}  // namespace ordo::platform
