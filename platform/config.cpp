#include "platform/config.hpp"

#include <cstdlib>
#include <fstream>
#include <stdexcept>

namespace ordo::platform {

std::map<std::string, std::string> read_env_file(const std::string& path) {
    std::ifstream in{path};
    if (!in) throw std::runtime_error("cannot read " + path);
    std::map<std::string, std::string> out;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        auto eq = line.find('=');
        if (eq == std::string::npos) continue;
        auto value = line.substr(eq + 1);
        // A value in single quotes (a URL with `&`, so that shells can source the file too)
        // is taken literally, without them.
        if (value.size() >= 2 && value.front() == '\'' && value.back() == '\'') {
            value = value.substr(1, value.size() - 2);
        }
        out[line.substr(0, eq)] = std::move(value);
    }
    return out;
}

void export_missing(const std::map<std::string, std::string>& values) {
    for (const auto& [key, value] : values) ::setenv(key.c_str(), value.c_str(), 0);
}

std::optional<std::string> env(const char* name) {
    const char* value = std::getenv(name);
    if (value == nullptr || *value == '\0') return std::nullopt;
    return std::string{value};
}

std::string with_database(const std::string& url, const std::string& database) {
    auto scheme = url.find("://");
    auto slash = url.find('/', scheme == std::string::npos ? 0 : scheme + 3);
    if (slash == std::string::npos) return url + "/" + database;
    auto query = url.find('?', slash);
    return url.substr(0, slash + 1) + database +
           (query == std::string::npos ? std::string{} : url.substr(query));
}

}  // namespace ordo::platform
