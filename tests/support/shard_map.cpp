#include "tests/support/shard_map.hpp"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "platform/core/trace.hpp"
#include "tests/support/process.hpp"
#include "tests/support/test_database.hpp"

namespace ordo::testing {

using namespace std::chrono_literals;

std::string hosts_of(const std::string& url) {
    auto at = url.find('@');
    auto start = at == std::string::npos ? url.find("://") + 3 : at + 1;
    return url.substr(start, url.find('/', start) - start);
}

std::string location(const TestDatabase& db) {
    return hosts_of(db.admin_url()) + "/" + db.name();
}

std::pair<int, std::string> ordo(const std::vector<std::string>& arguments, bool with_log,
                                 std::map<std::string, std::string> env) {
    const auto out =
        (std::filesystem::temp_directory_path() / ("ordo-shards-" + platform::new_uuid() + ".out"))
            .string();
    std::vector<std::string> argv{
        "/bin/sh", "-c",
        with_log ? "\"$0\" \"$@\" > \"$OUT\" 2>&1" : "\"$0\" \"$@\" > \"$OUT\" 2>/dev/null",
        ordo_binary()};
    argv.insert(argv.end(), arguments.begin(), arguments.end());
    env["OUT"] = out;
    Process p{argv, env};
    auto status = p.wait(120s);
    std::ifstream file{out};
    std::stringstream text;
    text << file.rdbuf();
    std::remove(out.c_str());
    return {status.value_or(-1), text.str()};
}

std::pair<int, std::string> write_two_shard_map(const TestDatabase& control,
                                                const TestDatabase& second, int partitions) {
    return ordo({"shards", "--database-url", control.migrator_url(), "--partitions",
                 std::to_string(partitions), "init", "--shard", "0=" + location(control), "--shard",
                 "1=" + location(second)},
                true);
}

}  // namespace ordo::testing
