// The soak's fault plan and outage figures (see schedule.hpp).
#include "tests/soak/schedule.hpp"

#include <algorithm>
#include <cstdio>
#include <random>

namespace ordo::soak {

std::string FaultSpec::name() const {
    switch (kind) {
        case FaultKind::kKill:
            return "kill:" + service;
        case FaultKind::kPause:
            return "pause:" + service;
        case FaultKind::kClock:
            return "clock:" + service;
        case FaultKind::kNatsRestart:
            return "nats-restart";
        case FaultKind::kNatsKill:
            return "nats-kill";
        case FaultKind::kPgFast:
            return "pg-fast";
        case FaultKind::kPgImmediate:
            return "pg-immediate";
        case FaultKind::kPgTerminate:
            return "pg-terminate";
        case FaultKind::kWebhookDown:
            return "webhook-down";
        case FaultKind::kSlowSink:
            return "slow-sink";
        case FaultKind::kNatsDiskFull:
            return "nats-disk-full";
        case FaultKind::kNatsNode:
            return "nats-node";
        case FaultKind::kPgFailover:
            return "pg-failover";
    }
    return "?";
}

bool applies_to(FaultKind kind, Topology topology) {
    switch (kind) {
        case FaultKind::kNatsRestart:
        case FaultKind::kNatsKill:
        case FaultKind::kPgFast:
        case FaultKind::kPgImmediate:
        case FaultKind::kNatsDiskFull:
            return topology == Topology::kSingle;
        case FaultKind::kNatsNode:
        case FaultKind::kPgFailover:
            return topology == Topology::kCluster;
        default:
            return true;
    }
}

int targets_of(FaultKind kind) {
    return kind == FaultKind::kNatsNode ? 3 : 2;
}

std::vector<FaultSpec> all_fault_specs() {
    std::vector<FaultSpec> all;
    for (auto kind : {FaultKind::kKill, FaultKind::kPause, FaultKind::kClock}) {
        for (auto service : kServices) all.push_back({kind, std::string{service}});
    }
    for (auto kind : {FaultKind::kNatsRestart, FaultKind::kNatsKill, FaultKind::kPgFast,
                      FaultKind::kPgImmediate, FaultKind::kPgTerminate, FaultKind::kWebhookDown,
                      FaultKind::kSlowSink, FaultKind::kNatsDiskFull, FaultKind::kNatsNode,
                      FaultKind::kPgFailover}) {
        all.push_back({kind, ""});
    }
    return all;
}

std::optional<std::vector<FaultSpec>> parse_fault_specs(std::string_view text, std::string& error) {
    const auto all = all_fault_specs();
    std::vector<FaultSpec> chosen;
    auto has = [&](const std::string& name) {
        return std::any_of(chosen.begin(), chosen.end(),
                           [&](const FaultSpec& s) { return s.name() == name; });
    };
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find(',', start);
        if (end == std::string_view::npos) end = text.size();
        std::string word{text.substr(start, end - start)};
        start = end + 1;
        if (word.empty()) {
            if (end == text.size()) break;
            error = "an empty fault name in \"" + std::string{text} + "\"";
            return std::nullopt;
        }
        const bool remove = word.front() == '-';
        if (remove) word.erase(0, 1);
        if (word == "all" || word == "none") {
            if (remove) {
                error = "\"-" + word + "\" means nothing";
                return std::nullopt;
            }
            chosen = word == "all" ? all : std::vector<FaultSpec>{};
            continue;
        }
        auto it = std::find_if(all.begin(), all.end(),
                               [&](const FaultSpec& s) { return s.name() == word; });
        if (it == all.end()) {
            error = "unknown fault \"" + word + "\"; known: all, none";
            for (const auto& s : all) error += ", " + s.name();
            return std::nullopt;
        }
        if (remove) {
            std::erase_if(chosen, [&](const FaultSpec& s) { return s.name() == word; });
        } else if (!has(word)) {
            chosen.push_back(*it);
        }
    }
    return chosen;
}

std::vector<PlannedFault> plan_faults(const std::vector<FaultSpec>& kinds,
                                      const PlanOptions& options) {
    std::vector<PlannedFault> plan;
    if (kinds.empty()) return plan;
    std::mt19937_64 random{options.seed};
    auto between = [&](Millis low, Millis high) {
        if (high <= low) return low;
        std::uniform_int_distribution<std::int64_t> pick{low.count(), high.count()};
        return Millis{pick(random)};
    };
    std::vector<std::size_t> round(kinds.size());
    for (std::size_t i = 0; i < round.size(); ++i) round[i] = i;
    std::shuffle(round.begin(), round.end(), random);
    Millis at = between(options.min_gap, options.max_gap);
    for (std::size_t n = 0;; ++n) {
        const auto length = between(options.min_length, options.max_length);
        if (at + length > options.duration) break;
        const auto& spec = kinds[n < round.size() ? round[n] : random() % kinds.size()];
        // One draw per fault whatever its kind, so that a seed's plan keeps its times.
        const int instance =
            static_cast<int>(random() % static_cast<unsigned>(targets_of(spec.kind)));
        plan.push_back({at, length, spec, instance});
        at += length + between(options.min_gap, options.max_gap);
    }
    return plan;
}

std::string seconds_text(Millis t) {
    char text[32];
    std::snprintf(text, sizeof text, "%.1f s", static_cast<double>(t.count()) / 1000);
    return text;
}

Millis longest_publish_delay(const std::vector<PublishDelay>& delays, Millis began,
                             Millis next_began) {
    Millis longest{0};
    for (const auto& d : delays) {
        if (d.recorded >= began && d.recorded < next_began) longest = std::max(longest, d.delay);
    }
    return longest;
}

OutageFigures outages_of_fault(const std::vector<Outage>& outages,
                               const std::vector<FailedAttempt>& failed, Millis began, Millis ended,
                               Millis next_began) {
    OutageFigures figures;
    for (const auto& f : failed) {
        if (f.at < began || f.at >= next_began) continue;
        ++(f.status == 503 ? figures.answered_503 : figures.other_failures);
    }
    for (const auto& o : outages) {
        if (o.from < began || o.from >= next_began) continue;
        figures.longest = std::max(figures.longest, o.to - o.from);
        figures.recovered_after = std::max(figures.recovered_after, o.to - ended);
    }
    return figures;
}

}  // namespace ordo::soak
