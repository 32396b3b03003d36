// The soak's fault plan (seeded, replayable, every kind once before any twice, one fault at a
// time within the run) and its outage figure.
#include <gtest/gtest.h>

#include <set>

#include "tests/soak/schedule.hpp"

namespace ordo::soak {
namespace {

using namespace std::chrono_literals;

TEST(SoakFaults, NamesParseAndUnknownOnesAreRefusedByName) {
    std::string error;
    auto all = parse_fault_specs("all", error);
    ASSERT_TRUE(all);
    EXPECT_EQ(all->size(), all_fault_specs().size());
    // kill, pause, clock of five services; three NATS; three PostgreSQL; two webhook receiver;
    // a NATS node and a PostgreSQL failover on the cluster
    EXPECT_EQ(all->size(), 25u);

    auto some = parse_fault_specs("all,-pg-immediate,-kill:relay,-nats-disk-full", error);
    ASSERT_TRUE(some);
    EXPECT_EQ(some->size(), 22u);
    for (const auto& s : *some) {
        EXPECT_NE(s.name(), "pg-immediate");
        EXPECT_NE(s.name(), "kill:relay");
        EXPECT_NE(s.name(), "nats-disk-full");
    }
    auto sinks = parse_fault_specs("webhook-down,slow-sink", error);
    ASSERT_TRUE(sinks);
    ASSERT_EQ(sinks->size(), 2u);
    EXPECT_EQ((*sinks)[0].kind, FaultKind::kWebhookDown);
    EXPECT_EQ((*sinks)[1].kind, FaultKind::kSlowSink);

    auto listed = parse_fault_specs("pause:command,nats-kill,pause:command,clock:sagas", error);
    ASSERT_TRUE(listed);
    ASSERT_EQ(listed->size(), 3u);
    EXPECT_EQ((*listed)[0].kind, FaultKind::kPause);
    EXPECT_EQ((*listed)[0].service, "command");
    EXPECT_EQ((*listed)[1].kind, FaultKind::kNatsKill);
    EXPECT_EQ((*listed)[2].kind, FaultKind::kClock);
    EXPECT_EQ((*listed)[2].service, "sagas");

    auto none = parse_fault_specs("none", error);
    ASSERT_TRUE(none);
    EXPECT_TRUE(none->empty());

    EXPECT_FALSE(parse_fault_specs("all,kill:webserver", error));
    EXPECT_NE(error.find("unknown fault \"kill:webserver\""), std::string::npos) << error;
    EXPECT_FALSE(parse_fault_specs("kill:relay,,nats-kill", error));
    EXPECT_FALSE(parse_fault_specs("-all", error));
}

TEST(SoakFaults, ThePlanIsTheSameForTheSameSeedAndCoversEveryKindFirst) {
    const auto kinds = all_fault_specs();
    PlanOptions options{.seed = 42,
                        .duration = 120s,
                        .min_gap = 1000ms,
                        .max_gap = 2500ms,
                        .min_length = 400ms,
                        .max_length = 2000ms};
    const auto plan = plan_faults(kinds, options);
    const auto again = plan_faults(kinds, options);
    ASSERT_EQ(plan.size(), again.size());
    for (std::size_t i = 0; i < plan.size(); ++i) {
        EXPECT_EQ(plan[i].at, again[i].at);
        EXPECT_EQ(plan[i].length, again[i].length);
        EXPECT_EQ(plan[i].spec.name(), again[i].spec.name());
        EXPECT_EQ(plan[i].instance, again[i].instance);
    }
    ASSERT_GE(plan.size(), kinds.size());
    std::set<std::string> first_round;
    for (std::size_t i = 0; i < kinds.size(); ++i) first_round.insert(plan[i].spec.name());
    EXPECT_EQ(first_round.size(), kinds.size()) << "every kind once before any kind twice";

    options.seed = 43;
    const auto other = plan_faults(kinds, options);
    bool differs = other.size() != plan.size();
    for (std::size_t i = 0; !differs && i < plan.size(); ++i) {
        differs = other[i].spec.name() != plan[i].spec.name() || other[i].at != plan[i].at;
    }
    EXPECT_TRUE(differs) << "another seed, another plan";
}

TEST(SoakFaults, FaultsComeOneAtATimeWithTheirGapsAndEndWithinTheRun) {
    PlanOptions options{.seed = 7,
                        .duration = 60s,
                        .min_gap = 1000ms,
                        .max_gap = 2000ms,
                        .min_length = 500ms,
                        .max_length = 1500ms};
    const auto plan = plan_faults(all_fault_specs(), options);
    ASSERT_FALSE(plan.empty());
    EXPECT_GE(plan.front().at, 1000ms);
    for (std::size_t i = 0; i < plan.size(); ++i) {
        EXPECT_GE(plan[i].length, 500ms);
        EXPECT_LE(plan[i].length, 1500ms);
        EXPECT_LE(plan[i].at + plan[i].length, 60s);
        EXPECT_GE(plan[i].instance, 0);
        EXPECT_LT(plan[i].instance, targets_of(plan[i].spec.kind));
        if (i > 0) {
            const auto gap = plan[i].at - (plan[i - 1].at + plan[i - 1].length);
            EXPECT_GE(gap, 1000ms);
            EXPECT_LE(gap, 2000ms);
        }
    }
    EXPECT_TRUE(plan_faults({}, options).empty());
    options.duration = 900ms;  // too short for one fault after the first gap
    EXPECT_TRUE(plan_faults(all_fault_specs(), options).empty());
}

TEST(SoakFaults, OutagesCountForTheFaultTheyBeganUnder) {
    const std::vector<Outage> outages = {{1000ms, 1500ms},     // before the fault
                                         {10500ms, 12000ms},   // during it
                                         {14000ms, 19000ms},   // during it, outlasting it
                                         {21000ms, 29000ms},   // after it ended, before the next
                                         {40000ms, 60000ms}};  // under the next fault
    const auto f = outages_of_fault(outages, {}, 10000ms, 15000ms, 35000ms);
    EXPECT_EQ(f.longest, 8000ms);
    EXPECT_EQ(f.recovered_after, 14000ms);
    const auto g = outages_of_fault(outages, {}, 10000ms, 15000ms, 20000ms);
    EXPECT_EQ(g.longest, 5000ms);
    EXPECT_EQ(g.recovered_after, 4000ms);
    const auto quiet = outages_of_fault(outages, {}, 2000ms, 3000ms, 9000ms);
    EXPECT_EQ(quiet.longest, 0ms);
    EXPECT_EQ(quiet.recovered_after, 0ms);
    const auto early = outages_of_fault({{1000ms, 1200ms}}, {}, 1000ms, 5000ms, 9000ms);
    EXPECT_EQ(early.longest, 200ms);
    EXPECT_EQ(early.recovered_after, 0ms) << "an outage over before the fault ended";

    // Failed attempts count for the fault they came under, 503s apart from the rest.
    const std::vector<FailedAttempt> failed = {{9000ms, 503},  {10000ms, 503}, {12000ms, 0},
                                               {16000ms, 503}, {19000ms, 504}, {20000ms, 503}};
    const auto counted = outages_of_fault(outages, failed, 10000ms, 15000ms, 20000ms);
    EXPECT_EQ(counted.answered_503, 2);
    EXPECT_EQ(counted.other_failures, 2);
}

TEST(SoakFaults, PublishingStalledIsTheLongestDelayOfEventsAppendedUnderTheFault) {
    const std::vector<PublishDelay> delays = {
        {9000ms, 9000ms}, {10000ms, 40ms}, {12000ms, 7000ms}, {19999ms, 300ms}, {20000ms, 9000ms}};
    EXPECT_EQ(longest_publish_delay(delays, 10000ms, 20000ms), 7000ms);
    EXPECT_EQ(longest_publish_delay(delays, 13000ms, 20000ms), 300ms);
    EXPECT_EQ(longest_publish_delay(delays, 30000ms, 40000ms), 0ms);
}

TEST(SoakFaults, EachTopologyTakesTheFaultsItHasTargetsFor) {
    int single = 0, cluster = 0;
    for (const auto& spec : all_fault_specs()) {
        single += applies_to(spec.kind, Topology::kSingle) ? 1 : 0;
        cluster += applies_to(spec.kind, Topology::kCluster) ? 1 : 0;
    }
    EXPECT_EQ(single, 23);   // everything but the cluster's node and failover faults
    EXPECT_EQ(cluster, 20);  // services, pg-terminate, the receiver, nats-node, pg-failover
    EXPECT_FALSE(applies_to(FaultKind::kPgImmediate, Topology::kCluster));
    EXPECT_FALSE(applies_to(FaultKind::kNatsDiskFull, Topology::kCluster));
    EXPECT_FALSE(applies_to(FaultKind::kPgFailover, Topology::kSingle));
    EXPECT_TRUE(applies_to(FaultKind::kPgTerminate, Topology::kCluster));

    // A NATS node fault picks one of three nodes, and over a long plan each of them.
    std::string error;
    auto nodes = parse_fault_specs("nats-node", error);
    ASSERT_TRUE(nodes);
    const auto plan = plan_faults(*nodes, {.seed = 5, .duration = 600s});
    std::set<int> picked;
    for (const auto& f : plan) picked.insert(f.instance);
    EXPECT_EQ(picked, (std::set<int>{0, 1, 2}));
}

}  // namespace
}  // namespace ordo::soak
