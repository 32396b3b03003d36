// A store sharded over two databases for tests, each on a PostgreSQL cluster of its own (the
// test stack runs two): `ordo` run as a command, and the spread map written with it.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

namespace ordo::testing {

class TestDatabase;

// "127.0.0.1:25432": the host list of a database URL.
std::string hosts_of(const std::string& url);
// "host:port/name": a database's location as `ordo shards init --shard` takes it.
std::string location(const TestDatabase& db);

// Runs `ordo <arguments>` to its end: its exit status and standard output (with its log,
// standard error, after it when `with_log`), with `env` added to its environment.
std::pair<int, std::string> ordo(const std::vector<std::string>& arguments, bool with_log = false,
                                 std::map<std::string, std::string> env = {});

// `ordo shards init` of `partitions` partitions over `control` (shard 0, which also holds
// the map and the read models) and `second` (shard 1): partition p on shard p mod 2. Its
// exit status and output.
std::pair<int, std::string> write_two_shard_map(const TestDatabase& control,
                                                const TestDatabase& second, int partitions);

}  // namespace ordo::testing
