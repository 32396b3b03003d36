// Service configuration helpers: env files as deploy/stack.sh writes them, environment
// lookups, and PostgreSQL connection strings given another database or default parameters.
#pragma once

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace ordo::platform {

// Reads KEY=VALUE lines (blank lines and # comments ignored), as written by deploy/stack.sh;
// a value in single quotes is read without them.
std::map<std::string, std::string> read_env_file(const std::string& path);

// Exports every entry that is not already set in the environment: explicit settings win.
void export_missing(const std::map<std::string, std::string>& values);

std::optional<std::string> env(const char* name);

// Replaces the database name in a postgresql:// URL (used to point a role at another database).
std::string with_database(const std::string& url, const std::string& database);

// Connection parameters by name, in the order they are to be written.
using ConnectionParameters = std::vector<std::pair<std::string, std::string>>;

// `url` with each of `defaults` that it does not set itself appended: a value the URL
// names wins over the default. Takes both forms libpq reads, a postgresql:// (or
// postgres://) URI, whose query gets the parameters percent-encoded, and key=value pairs.
std::string with_default_parameters(const std::string& url, const ConnectionParameters& defaults);

}  // namespace ordo::platform
