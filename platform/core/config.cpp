// Env files read and exported (explicit settings win), and PostgreSQL URIs and key=value
// connection strings rewritten: their database replaced, missing defaults appended.
#include "platform/core/config.hpp"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <set>
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

namespace {

bool is_uri(const std::string& url) {
    return url.rfind("postgresql://", 0) == 0 || url.rfind("postgres://", 0) == 0;
}

// The parameter names in a URI's query ("?a=1&b=2").
std::set<std::string> uri_parameters(const std::string& url) {
    std::set<std::string> names;
    auto query = url.find('?');
    if (query == std::string::npos) return names;
    std::size_t start = query + 1;
    while (start <= url.size()) {
        auto end = url.find('&', start);
        if (end == std::string::npos) end = url.size();
        auto part = url.substr(start, end - start);
        names.insert(part.substr(0, part.find('=')));
        start = end + 1;
    }
    return names;
}

// The keywords of a key=value connection string ("host=h dbname='my db'"): blanks may
// surround '=', a value may be single-quoted with backslash escapes.
std::set<std::string> keyword_parameters(const std::string& conninfo) {
    std::set<std::string> names;
    std::size_t i = 0;
    const auto n = conninfo.size();
    auto blank = [&](std::size_t at) {
        return std::isspace(static_cast<unsigned char>(conninfo[at])) != 0;
    };
    while (i < n) {
        while (i < n && blank(i)) ++i;
        if (i >= n) break;
        const auto key_start = i;
        while (i < n && conninfo[i] != '=' && !blank(i)) ++i;
        names.insert(conninfo.substr(key_start, i - key_start));
        while (i < n && blank(i)) ++i;
        if (i < n && conninfo[i] == '=') ++i;
        while (i < n && blank(i)) ++i;
        if (i < n && conninfo[i] == '\'') {
            for (++i; i < n && conninfo[i] != '\''; ++i) {
                if (conninfo[i] == '\\') ++i;
            }
            ++i;
        } else {
            while (i < n && !blank(i)) ++i;
        }
    }
    return names;
}

std::string percent_encoded(const std::string& text) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    std::string out;
    for (unsigned char c : text) {
        if (std::isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            out += static_cast<char>(c);
        } else {
            out += '%';
            out += kHex[c >> 4];
            out += kHex[c & 0xf];
        }
    }
    return out;
}

std::string quoted(const std::string& value) {
    std::string out = "'";
    for (char c : value) {
        if (c == '\'' || c == '\\') out += '\\';
        out += c;
    }
    return out + "'";
}

}  // namespace

std::string with_default_parameters(const std::string& url, const ConnectionParameters& defaults) {
    const bool uri = is_uri(url);
    const auto present = uri ? uri_parameters(url) : keyword_parameters(url);
    std::string out = url;
    bool query = uri && url.find('?') != std::string::npos;
    for (const auto& [name, value] : defaults) {
        if (present.count(name) > 0) continue;
        if (uri) {
            if (!query) {
                out += '?';
                query = true;
            } else if (out.back() != '?' && out.back() != '&') {
                out += '&';
            }
            out += name + "=" + percent_encoded(value);
        } else {
            if (!out.empty() && !std::isspace(static_cast<unsigned char>(out.back()))) out += ' ';
            out += name + "=" + quoted(value);
        }
    }
    return out;
}

}  // namespace ordo::platform
