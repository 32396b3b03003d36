// The partition -> shard map: its invariants, lookups, and shard locations as text and URLs.
#include "eventstore/shard_map.hpp"

#include <algorithm>
#include <regex>
#include <set>
#include <stdexcept>

#include "eventstore/topology.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/partition.hpp"

namespace ordo::eventstore {
namespace {

using platform::InvalidInput;

// libpq's host list: names, IPv4, bracketed IPv6, each with an optional port.
bool valid_hosts(const std::string& hosts) {
    static const std::regex one{
        R"((\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)(:[0-9]{1,5})?)"};
    if (hosts.empty() || hosts.size() > 255) return false;
    std::size_t start = 0;
    for (;;) {
        auto comma = hosts.find(',', start);
        auto part =
            hosts.substr(start, comma == std::string::npos ? std::string::npos : comma - start);
        if (!std::regex_match(part, one)) return false;
        if (comma == std::string::npos) return true;
        start = comma + 1;
    }
}

bool valid_database(const std::string& name) {
    static const std::regex identifier{"[a-z_][a-z0-9_]{0,62}"};
    return std::regex_match(name, identifier);
}

void check_location(const ShardLocation& s) {
    if (s.id < 0 || s.id >= kMaxShards) {
        throw InvalidInput("shard ids are 0 to " + std::to_string(kMaxShards - 1) + ", not " +
                           std::to_string(s.id));
    }
    if (!valid_hosts(s.hosts)) {
        throw InvalidInput("shard " + std::to_string(s.id) + ": '" + s.hosts +
                           "' is not a host list (host[:port][,host[:port]...])");
    }
    if (!valid_database(s.database)) {
        throw InvalidInput("shard " + std::to_string(s.id) + ": '" + s.database +
                           "' is not a database name (lower-case letters, digits, _)");
    }
}

}  // namespace

ShardMap::ShardMap(std::int64_t version, int partitions, std::vector<ShardLocation> shards,
                   std::vector<int> owners)
    : version_{version}, shards_{std::move(shards)}, owners_{std::move(owners)} {
    if (version_ < 0) throw InvalidInput("a shard map's version is 0 or more");
    if (partitions < 1 || partitions > kMaxPartitions) {
        throw InvalidInput("the partition count must be 1 to " + std::to_string(kMaxPartitions));
    }
    if (static_cast<int>(owners_.size()) != partitions) {
        throw InvalidInput("the shard map names an owner for " + std::to_string(owners_.size()) +
                           " partitions, not " + std::to_string(partitions));
    }
    if (shards_.empty()) throw InvalidInput("a shard map needs at least one shard");
    std::sort(shards_.begin(), shards_.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    if (version_ == 0 &&
        (shards_.size() != 1 || !shards_[0].hosts.empty() || !shards_[0].database.empty())) {
        throw InvalidInput(
            "the implicit map (version 0) is one shard on the service's own database");
    }
    std::set<int> ids;
    for (const auto& s : shards_) {
        if (version_ > 0) check_location(s);
        if (!ids.insert(s.id).second) {
            throw InvalidInput("shard " + std::to_string(s.id) + " is in the map twice");
        }
    }
    std::set<int> owning;
    for (std::size_t p = 0; p < owners_.size(); ++p) {
        if (!ids.count(owners_[p])) {
            throw InvalidInput("partition " + std::to_string(p) + " is owned by shard " +
                               std::to_string(owners_[p]) + ", which is not in the map");
        }
        owning.insert(owners_[p]);
    }
    for (int id : ids) {
        if (!owning.count(id)) {
            throw InvalidInput("shard " + std::to_string(id) + " owns no partition");
        }
    }
}

ShardMap ShardMap::single(int partitions) {
    return ShardMap{0,
                    partitions,
                    {ShardLocation{}},
                    std::vector<int>(static_cast<std::size_t>(std::max(partitions, 0)), 0)};
}

ShardMap ShardMap::spread(int partitions, std::vector<ShardLocation> shards) {
    if (shards.empty()) throw InvalidInput("a shard map needs at least one shard");
    if (static_cast<int>(shards.size()) > partitions) {
        throw InvalidInput(std::to_string(shards.size()) + " shards cannot share " +
                           std::to_string(partitions) + " partitions: each needs one");
    }
    std::sort(shards.begin(), shards.end(),
              [](const auto& a, const auto& b) { return a.id < b.id; });
    std::vector<int> owners;
    for (int p = 0; p < partitions; ++p) {
        owners.push_back(shards[static_cast<std::size_t>(p) % shards.size()].id);
    }
    return ShardMap{1, partitions, std::move(shards), std::move(owners)};
}

int ShardMap::shard_of_partition(int partition) const {
    return owners_.at(static_cast<std::size_t>(partition));
}

int ShardMap::shard_of(std::string_view stream) const {
    return owners_[static_cast<std::size_t>(platform::partition_of(stream, partitions()))];
}

const ShardLocation& ShardMap::location(int id) const {
    for (const auto& s : shards_) {
        if (s.id == id) return s;
    }
    throw std::out_of_range("shard " + std::to_string(id) + " is not in the map");
}

std::vector<int> ShardMap::partitions_of(int id) const {
    std::vector<int> owned;
    for (std::size_t p = 0; p < owners_.size(); ++p) {
        if (owners_[p] == id) owned.push_back(static_cast<int>(p));
    }
    return owned;
}

ShardLocation parse_location(int id, std::string_view text) {
    auto slash = text.rfind('/');
    if (slash == std::string_view::npos) {
        throw InvalidInput("a shard's location is host[:port][,host[:port]...]/database, not '" +
                           std::string{text} + "'");
    }
    ShardLocation location{id, std::string{text.substr(0, slash)},
                           std::string{text.substr(slash + 1)}};
    check_location(location);
    return location;
}

std::string to_string(const ShardLocation& location) {
    return location.hosts + "/" + location.database;
}

std::string shard_url(const std::string& url, const ShardLocation& location) {
    if (location.hosts.empty()) return url;  // the implicit map's shard: the service's own
    constexpr std::string_view schemes[] = {"postgresql://", "postgres://"};
    std::size_t authority = std::string::npos;
    for (auto scheme : schemes) {
        if (url.rfind(scheme, 0) == 0) authority = scheme.size();
    }
    if (authority == std::string::npos) {
        throw InvalidInput("a sharded store needs its database URL as postgresql://...");
    }
    // The host list ends at the path or the query; user information ends at the last '@'
    // before it (a password may hold '/' or '?' only percent-encoded).
    auto end = url.find_first_of("/?", authority);
    if (end == std::string::npos) end = url.size();
    auto at = url.rfind('@', end);
    const auto hosts_at = (at == std::string::npos || at < authority) ? authority : at + 1;
    auto query = url.find('?', hosts_at);
    // libpq applies the query's parameters after the host part: one that names a host, port,
    // database or service would send every shard to the same place.
    if (query != std::string::npos) {
        std::size_t start = query + 1;
        while (start < url.size()) {
            auto end = url.find('&', start);
            if (end == std::string::npos) end = url.size();
            const auto key = url.substr(
                start, url.find('=', start) < end ? url.find('=', start) - start : end - start);
            if (key.find('%') != std::string::npos) {
                throw InvalidInput(
                    "a sharded store cannot use a database URL with a "
                    "percent-encoded parameter name ('" +
                    key + "')");
            }
            for (const char* overriding : {"host", "hostaddr", "port", "dbname", "service"}) {
                if (key == overriding) {
                    throw InvalidInput("a sharded store cannot use a database URL whose '" + key +
                                       "' parameter names where to connect: write the host and "
                                       "database in the URL's own parts");
                }
            }
            start = end + 1;
        }
    }
    return url.substr(0, hosts_at) + location.hosts + "/" + location.database +
           (query == std::string::npos ? std::string{} : url.substr(query));
}

}  // namespace ordo::eventstore
