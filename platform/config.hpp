#pragma once

#include <map>
#include <optional>
#include <string>

namespace ordo::platform {

// Reads KEY=VALUE lines (blank lines and # comments ignored), as written by deploy/stack.sh;
// a value in single quotes is read without them.
std::map<std::string, std::string> read_env_file(const std::string& path);

// Exports every entry that is not already set in the environment: explicit settings win.
void export_missing(const std::map<std::string, std::string>& values);

std::optional<std::string> env(const char* name);

// Replaces the database name in a postgresql:// URL (used to point a role at another database).
std::string with_database(const std::string& url, const std::string& database);

}  // namespace ordo::platform
