// What tests wait on and read: eventually() polls a condition within a bound, scalar() reads
// one value, store_settled() tells whether every stored event is visible to readers,
// read_all_until() reads the store's history until the events a test expects have come.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "eventstore/store.hpp"

namespace ordo::testing {

// Waits until `condition` holds, polling; false after `bound`, so a test fails on what
// never happened instead of hanging. Waiting for a condition is not sleep-and-hope: the
// test proceeds the moment the system is there.
template <class Fn>
bool eventually(Fn&& condition, std::chrono::seconds bound = std::chrono::seconds(120),
                std::chrono::milliseconds every = std::chrono::milliseconds(20)) {
    auto deadline = std::chrono::steady_clock::now() + bound;
    while (!condition()) {
        if (std::chrono::steady_clock::now() > deadline) return false;
        std::this_thread::sleep_for(every);
    }
    return true;
}

// The first column of the first row of `sql` on a fresh connection; 0 for no row or NULL.
std::int64_t scalar(const std::string& url, const std::string& sql);

// Every committed event of the store at `url` is below the horizon its readers use (the
// oldest transaction still running anywhere in the cluster). Tests share one cluster, so a
// transaction of another test can hold that horizon below events this test just appended.
bool store_settled(const std::string& url);

// Up to `count` events of `store.read_all` after `after`, polling until they have come.
// PostgreSQL's read_all shows only what is below the cluster-wide horizon, which other
// tests' transactions hold back for moments. Fewer than `count` after 60 s: the caller's
// assertion on the size fails, it does not hang.
std::vector<eventstore::RecordedEvent> read_all_until(eventstore::Store& store,
                                                      eventstore::Checkpoint after,
                                                      std::size_t count);

}  // namespace ordo::testing
