// The hop breakdown of a benchmark run: reads two scrapes of the services' /metrics (before
// and after the run, each the services' texts one after another) and prints, per series of
// ordo_hop_seconds, the observations made between them with p50 and p99 from the buckets.
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <limits>
#include <map>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "platform/core/metrics.hpp"

namespace {

// Per series (its labels without le): bucket bound -> cumulative count; +Inf as infinity.
using Buckets = std::map<double, double>;
using Scrape = std::map<std::string, Buckets>;

constexpr std::string_view kBucket = "ordo_hop_seconds_bucket{";

// Sums the series that several services (or processes) report under the same labels.
Scrape read_scrape(const char* path) {
    Scrape scrape;
    std::ifstream in{path};
    if (!in) throw std::runtime_error(std::string{"cannot read "} + path);
    for (std::string line; std::getline(in, line);) {
        if (line.rfind(kBucket, 0) != 0) continue;
        const auto close = line.find('}');
        if (close == std::string::npos) continue;
        auto labels = line.substr(kBucket.size(), close - kBucket.size());
        const auto le = labels.rfind("le=\"");
        if (le == std::string::npos) continue;
        const auto le_end = labels.find('"', le + 4);
        const auto bound_text = labels.substr(le + 4, le_end - le - 4);
        const double bound =
            bound_text == "+Inf" ? std::numeric_limits<double>::infinity() : std::stod(bound_text);
        labels.erase(le == 0 ? 0 : le - 1, le_end + 1 - (le == 0 ? 0 : le - 1));
        if (!labels.empty() && labels.front() == ',') labels.erase(0, 1);
        scrape[labels][bound] += std::stod(line.substr(close + 1));
    }
    return scrape;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc != 3) {
        std::cerr << "usage: hops <metrics before> <metrics after>\n";
        return 2;
    }
    const auto before = read_scrape(argv[1]);
    const auto after = read_scrape(argv[2]);
    std::printf("%-72s %8s %9s %9s\n", "hop", "count", "p50 ms", "p99 ms");
    for (const auto& [labels, buckets] : after) {
        std::vector<double> bounds;
        std::vector<std::uint64_t> cumulative;
        const auto earlier = before.find(labels);
        for (const auto& [bound, count] : buckets) {
            double was = 0;
            if (earlier != before.end()) {
                if (auto it = earlier->second.find(bound); it != earlier->second.end()) {
                    was = it->second;
                }
            }
            if (bound != std::numeric_limits<double>::infinity()) bounds.push_back(bound);
            cumulative.push_back(static_cast<std::uint64_t>(count - was));
        }
        if (cumulative.empty() || cumulative.back() == 0) continue;
        const auto p50 = ordo::platform::metrics::quantile(bounds, cumulative, 0.5);
        const auto p99 = ordo::platform::metrics::quantile(bounds, cumulative, 0.99);
        std::printf("%-72s %8llu %9.1f %9.1f\n", labels.c_str(),
                    static_cast<unsigned long long>(cumulative.back()), p50.value_or(0) * 1000,
                    p99.value_or(0) * 1000);
    }
    std::printf(
        "p50/p99 interpolated inside histogram buckets (0.5 ms to 5 s); a p99 at 5000 "
        "means above 5 s\n");
    return 0;
}
