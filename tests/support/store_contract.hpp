#pragma once

// The contract of eventstore::Store as one typed test suite: every implementation runs it
// (MemoryStore as a unit test, EventStore on PostgreSQL as an integration test). A Harness
// type provides `eventstore::Store& store()`, reading through contract_upcasters(), and
// `void let_time_pass()` (after it, the store's clock reads later than for any key recorded
// before).

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "eventstore/store.hpp"
#include "eventstore/upcasting.hpp"
#include "platform/core/errors.hpp"
#include "platform/core/trace.hpp"
#include "tests/support/conditions.hpp"

namespace ordo::testing {

inline eventstore::NewEvent new_event(std::string type, nlohmann::json payload = {{"n", 1}}) {
    return eventstore::NewEvent{platform::new_uuid(), std::move(type), std::move(payload), {}};
}

// The registry the harnesses' stores read through: "Renamed" v1 {"old": x} -> v2 {"new": x}
// -> v3 {"new": x, "unit": "EUR"}; every other type passes through.
inline eventstore::Upcasters contract_upcasters() {
    eventstore::Upcasters registry;
    registry.add("Renamed", 1, [](nlohmann::json p) {
        return nlohmann::json{{"new", p.at("old")}};
    });
    registry.add("Renamed", 2, [](nlohmann::json p) {
        p["unit"] = "EUR";
        return p;
    });
    return registry;
}

inline eventstore::NewEvent versioned_event(std::string type, int version, nlohmann::json payload) {
    auto event = new_event(std::move(type), std::move(payload));
    event.schema_version = version;
    return event;
}

// Sessions that race on one stream: kTurnTakers threads each run `unit` in kTurnsEach
// transactions of their own. Returns how many ended in a concurrency conflict.
inline constexpr int kTurnTakers = 6;
inline constexpr int kTurnsEach = 10;
inline constexpr int kTurns = kTurnTakers * kTurnsEach;
template <class Unit>
int take_turns(eventstore::Store& store, const Unit& unit) {
    std::atomic<int> conflicts{0};
    std::vector<std::thread> takers;
    for (int t = 0; t < kTurnTakers; ++t) {
        takers.emplace_back([&] {
            for (int i = 0; i < kTurnsEach; ++i) {
                try {
                    store.transact([&](eventstore::Session& s) { unit(s); });
                } catch (const eventstore::ConcurrencyConflict&) {
                    ++conflicts;
                }
            }
        });
    }
    for (auto& t : takers) t.join();
    return conflicts.load();
}

template <class Harness>
class StoreContract : public ::testing::Test {
   protected:
    eventstore::Store& store() { return harness_.store(); }

    // Polls past the horizon (read_all_until): reads until `count` events came.
    std::vector<eventstore::RecordedEvent> read_all(eventstore::Checkpoint after,
                                                    std::size_t count) {
        return read_all_until(store(), after, count);
    }

    // The text of the InvalidInput an append refuses with; empty when it does not.
    std::string refusal(const std::string& stream,
                        const std::vector<eventstore::NewEvent>& events) {
        try {
            store().append(stream, eventstore::ExpectedVersion::any(), events);
        } catch (const platform::InvalidInput& e) {
            return e.what();
        }
        return {};
    }

    Harness harness_;
};

TYPED_TEST_SUITE_P(StoreContract);

using eventstore::Checkpoint;
using eventstore::ConcurrencyConflict;
using eventstore::EventIdReused;
using eventstore::ExpectedVersion;
using eventstore::KeyClaimed;
using eventstore::KeyFinished;
using eventstore::KeyTakenByOtherRequest;
using eventstore::Session;

TYPED_TEST_P(StoreContract, AppendsAndReadsAStreamInVersionOrderAPageAtATime) {
    auto& store = this->store();
    EXPECT_EQ(store.stream_version("order-1"), 0);
    auto first = store.append("order-1", ExpectedVersion::no_stream(),
                              {new_event("A", {{"n", 1}}), new_event("B", {{"n", 2}})});
    EXPECT_FALSE(first.replayed);
    EXPECT_EQ(first.first_version, 1);
    EXPECT_EQ(first.last_version, 2);
    ASSERT_EQ(first.positions.size(), 2u);
    EXPECT_LT(first.positions[0], first.positions[1]);
    auto second = store.append("order-1", ExpectedVersion::exact(2), {new_event("C")});
    EXPECT_EQ(second.first_version, 3);
    EXPECT_EQ(second.last_version, 3);
    EXPECT_LT(first.checkpoint, second.checkpoint);
    EXPECT_EQ(store.stream_version("order-1"), 3);

    auto all = store.read_stream("order-1", 1, 100);
    ASSERT_EQ(all.size(), 3u);
    EXPECT_EQ(all[0].type, "A");
    EXPECT_EQ(all[0].payload, (nlohmann::json{{"n", 1}}));
    EXPECT_EQ(all[0].stream_id, "order-1");
    EXPECT_EQ(all[0].category, "order");
    EXPECT_EQ(all[2].version, 3);
    EXPECT_EQ(all[2].checkpoint(), second.checkpoint);
    auto page = store.read_stream("order-1", 2, 1);
    ASSERT_EQ(page.size(), 1u);
    EXPECT_EQ(page[0].type, "B");
    EXPECT_EQ(page[0].version, 2);
    EXPECT_TRUE(store.read_stream("order-1", 4, 100).empty());
    EXPECT_TRUE(store.read_stream("order-none", 1, 100).empty());
}

// Many streams at once give what each one's read_stream gives, in the order asked: a stream
// asked twice, one with nothing, one from past its end, a page's limit per stream, and every
// event upcast; on the store and in a session alike.
TYPED_TEST_P(StoreContract, ReadsManyStreamsAsEachAloneInTheOrderAsked) {
    auto& store = this->store();
    store.append("order-m1", ExpectedVersion::no_stream(),
                 {new_event("A", {{"n", 1}}), new_event("B", {{"n", 2}}), new_event("C")});
    store.append("order-m2", ExpectedVersion::no_stream(),
                 {versioned_event("Renamed", 1, {{"old", 5}}), new_event("D")});
    const std::vector<eventstore::StreamFrom> asked = {
        {"order-m2", 1}, {"order-none", 1}, {"order-m1", 2}, {"order-m1", 4}, {"order-m2", 2}};
    auto check = [&](auto& reader, std::size_t max_count, const char* path) {
        const auto read = reader.read_streams(asked, max_count);
        ASSERT_EQ(read.size(), asked.size()) << path;
        for (std::size_t i = 0; i < asked.size(); ++i) {
            const auto alone =
                reader.read_stream(asked[i].stream, asked[i].from_version, max_count);
            ASSERT_EQ(read[i].size(), alone.size()) << path << " stream " << i;
            for (std::size_t j = 0; j < alone.size(); ++j) {
                EXPECT_EQ(read[i][j].event_id, alone[j].event_id) << path;
                EXPECT_EQ(read[i][j].payload, alone[j].payload) << path;
                EXPECT_EQ(read[i][j].checkpoint(), alone[j].checkpoint()) << path;
            }
        }
        EXPECT_TRUE(read[1].empty()) << path;
        EXPECT_TRUE(read[3].empty()) << path;
        ASSERT_FALSE(read[0].empty()) << path;
        EXPECT_EQ(read[0][0].payload, (nlohmann::json{{"new", 5}, {"unit", "EUR"}})) << path;
    };
    check(store, 100, "store");
    check(store, 1, "store, a page of one");
    const auto all = store.read_streams(asked, 100);
    EXPECT_EQ(all[2].size(), 2u);
    EXPECT_EQ(all[2][0].version, 2);
    EXPECT_EQ(all[4].size(), 1u);
    EXPECT_EQ(store.read_streams(asked, 1)[2].size(), 1u);
    store.transact([&](Session& s) { check(s, 100, "session"); });
    EXPECT_TRUE(store.read_streams({}, 100).empty());
}

TYPED_TEST_P(StoreContract, KeepsMetadataAndSchemaVersion) {
    auto event = new_event("A");
    event.metadata = {"t", "s", "corr", "cause", "cmd", "actor"};
    event.schema_version = 3;
    this->store().append("order-m", ExpectedVersion::any(), {event});
    auto read = this->store().read_stream("order-m", 1, 1);
    ASSERT_EQ(read.size(), 1u);
    EXPECT_EQ(read[0].event_id, event.event_id);
    EXPECT_EQ(read[0].schema_version, 3);
    EXPECT_EQ(read[0].metadata.to_json(), event.metadata.to_json());
    EXPECT_FALSE(read[0].recorded_at.empty());
}

// Every read returns old versions in the current shape, and leaves the stored events as they
// were appended: re-appending the original version-1 event is recognised as the same event
// (a replay compares the stored payload), which it would not be had a read rewritten it.
TYPED_TEST_P(StoreContract, ReadsUpcastOldSchemaVersionsAndNeverRewriteThem) {
    auto& store = this->store();
    const nlohmann::json current = {{"new", 7}, {"unit", "EUR"}};
    const auto v1 = versioned_event("Renamed", 1, {{"old", 7}});
    const auto v2 = versioned_event("Renamed", 2, {{"new", 7}});
    const auto v3 = versioned_event("Renamed", 3, current);
    const auto other = versioned_event("Other", 4, {{"x", 1}});
    const auto first = store.append("thing-1", ExpectedVersion::no_stream(), {v1, v2, v3, other});

    auto check = [&](const std::vector<eventstore::RecordedEvent>& read, const char* path) {
        ASSERT_EQ(read.size(), 4u) << path;
        for (std::size_t i = 0; i < 3; ++i) {
            EXPECT_EQ(read[i].payload, current) << path << " event " << i;
            EXPECT_EQ(read[i].schema_version, 3) << path << " event " << i;
        }
        EXPECT_EQ(read[3].payload, other.payload) << path;  // a type it does not know
        EXPECT_EQ(read[3].schema_version, 4) << path;
    };
    check(store.read_stream("thing-1", 1, 10), "read_stream");
    check(this->read_all(Checkpoint{}, 4), "read_all");
    store.transact([&](Session& s) {
        check(s.read_stream("thing-1", 1, 10), "session read_stream");
        check(s.read_all(Checkpoint{}, 10), "session read_all");
    });

    const auto again = store.append("thing-1", ExpectedVersion::no_stream(), {v1, v2, v3, other});
    EXPECT_TRUE(again.replayed);
    EXPECT_EQ(again.positions, first.positions);
}

// A version newer than the reader knows is refused, never guessed at.
TYPED_TEST_P(StoreContract, ReadingASchemaVersionNewerThanKnownFails) {
    auto& store = this->store();
    store.append("thing-2", ExpectedVersion::no_stream(),
                 {versioned_event("Renamed", 4, {{"newest", 1}})});
    EXPECT_THROW(store.read_stream("thing-2", 1, 10), eventstore::UnknownSchemaVersion);
    EXPECT_THROW(store.transact([](Session& s) { s.read_stream("thing-2", 1, 10); }),
                 eventstore::UnknownSchemaVersion);
    // Nothing of the store was changed by the refused read.
    EXPECT_EQ(store.stream_version("thing-2"), 1);
}

TYPED_TEST_P(StoreContract, ExpectedVersionsConflictWithTheActualVersion) {
    auto& store = this->store();
    store.append("order-c", ExpectedVersion::any(), {new_event("A"), new_event("B")});
    try {
        store.append("order-c", ExpectedVersion::no_stream(), {new_event("C")});
        FAIL() << "no_stream on an existing stream appended";
    } catch (const ConcurrencyConflict& e) {
        EXPECT_EQ(e.actual_version(), 2);
        EXPECT_EQ(e.stream(), "order-c");
    }
    try {
        store.append("order-c", ExpectedVersion::exact(1), {new_event("C")});
        FAIL() << "a stale exact version appended";
    } catch (const ConcurrencyConflict& e) {
        EXPECT_EQ(e.actual_version(), 2);
    }
    EXPECT_THROW(store.append("order-new", ExpectedVersion::exact(1), {new_event("C")}),
                 ConcurrencyConflict);
    EXPECT_EQ(store.append("order-c", ExpectedVersion::any(), {new_event("C")}).last_version, 3);
    EXPECT_EQ(store.stream_version("order-c"), 3);
    EXPECT_EQ(store.stream_version("order-new"), 0);
}

TYPED_TEST_P(StoreContract, ReAppendingStoredEventsReplaysAndWritesNothing) {
    auto& store = this->store();
    store.append("order-r", ExpectedVersion::any(), {new_event("Before")});
    const std::vector batch{new_event("A"), new_event("B")};
    auto first = store.append("order-r", ExpectedVersion::exact(1), batch);
    for (auto expected : {ExpectedVersion::any(), ExpectedVersion::exact(1)}) {
        auto again = store.append("order-r", expected, batch);
        EXPECT_TRUE(again.replayed);
        EXPECT_EQ(again.first_version, 2);
        EXPECT_EQ(again.last_version, 3);
        EXPECT_EQ(again.positions, first.positions);
        EXPECT_EQ(again.checkpoint, first.checkpoint);
    }
    // A replay at another expected version than the batch was written at is a conflict.
    EXPECT_THROW(store.append("order-r", ExpectedVersion::exact(3), batch), ConcurrencyConflict);
    // A batch that opened its stream replays at no_stream, though the stream exists now.
    const std::vector opening{new_event("Opened")};
    auto opened = store.append("order-o", ExpectedVersion::no_stream(), opening);
    auto opened_again = store.append("order-o", ExpectedVersion::no_stream(), opening);
    EXPECT_TRUE(opened_again.replayed);
    EXPECT_EQ(opened_again.last_version, 1);
    EXPECT_EQ(opened_again.positions, opened.positions);
    // Any stored part of a batch replays alone, at the versions it was stored at.
    auto tail = store.append("order-r", ExpectedVersion::any(), {batch[1]});
    EXPECT_TRUE(tail.replayed);
    EXPECT_EQ(tail.first_version, 3);
    EXPECT_EQ(tail.last_version, 3);
    EXPECT_EQ(tail.positions, std::vector<std::int64_t>{first.positions[1]});
    EXPECT_EQ(store.read_stream("order-r", 1, 100).size(), 3u);
    EXPECT_EQ(store.stream_version("order-o"), 1);
}

TYPED_TEST_P(StoreContract, AnEventIdStoredWithOtherContentOrElsewhereIsReused) {
    auto& store = this->store();
    auto stored = new_event("A", {{"n", 1}});
    store.append("order-u", ExpectedVersion::any(), {stored});

    auto other_payload = stored;
    other_payload.payload = {{"n", 2}};
    auto other_type = stored;
    other_type.type = "B";
    for (const auto& reused : {other_payload, other_type}) {
        try {
            store.append("order-u", ExpectedVersion::any(), {reused});
            FAIL() << "reused id appended";
        } catch (const EventIdReused& e) {
            EXPECT_EQ(e.event_id(), stored.event_id);
        }
    }
    EXPECT_THROW(store.append("order-elsewhere", ExpectedVersion::any(), {stored}), EventIdReused);
    // Part of a batch stored: not a replay.
    EXPECT_THROW(store.append("order-u", ExpectedVersion::any(), {stored, new_event("C")}),
                 EventIdReused);
    EXPECT_EQ(store.stream_version("order-u"), 1);
    EXPECT_EQ(store.stream_version("order-elsewhere"), 0);
}

TYPED_TEST_P(StoreContract, RefusesInvalidInputWithTheSameTexts) {
    auto bad_id = new_event("X");
    bad_id.event_id = "not-a-uuid";
    auto twice = new_event("X");
    auto no_type = new_event("");
    EXPECT_EQ(this->refusal("order-x", {}), "an append needs at least one event");
    EXPECT_EQ(this->refusal("nocategory", {new_event("X")}),
              "invalid stream id 'nocategory': expected <category>-<id> of [A-Za-z0-9._-]");
    EXPECT_EQ(this->refusal("order-bad id", {new_event("X")}),
              "invalid stream id 'order-bad id': expected <category>-<id> of [A-Za-z0-9._-]");
    EXPECT_EQ(this->refusal("order-x", {bad_id}), "event id 'not-a-uuid' is not a UUID");
    EXPECT_EQ(this->refusal("order-x", {twice, twice}),
              "event id " + twice.event_id + " appears twice in one append");
    auto upper = twice;  // the same UUID, its hex digits in capitals
    for (auto& c : upper.event_id)
        c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
    EXPECT_EQ(this->refusal("order-x", {twice, upper}),
              "event id " + upper.event_id + " appears twice in one append");
    EXPECT_EQ(this->refusal("order-x", {no_type}), "event type must be 1 to 200 characters");
    EXPECT_EQ(this->refusal("order-x", std::vector<eventstore::NewEvent>(10'001, new_event("X"))),
              "at most 10000 events per append");
    EXPECT_THROW(ExpectedVersion::exact(0), platform::InvalidInput);
    this->store().transact([&](Session& s) {
        EXPECT_THROW(s.append("order-x", ExpectedVersion::any(), {}), platform::InvalidInput);
    });
    EXPECT_EQ(this->store().stream_version("order-x"), 0);
}

// A session sees its own appends in its streams, but reading all returns committed history
// only: on PostgreSQL what the session appended sits above the horizon until it commits.
TYPED_TEST_P(StoreContract, ASessionReadsAllOnlyWhatIsCommitted) {
    auto& store = this->store();
    auto first = store.append("order-r", ExpectedVersion::any(), {new_event("A")});
    ASSERT_EQ(this->read_all(Checkpoint{}, 1).size(), 1u);  // past the horizon
    store.transact([&](Session& s) {
        s.append("order-r", ExpectedVersion::exact(1), {new_event("B")});
        EXPECT_EQ(s.read_stream("order-r", 1, 10).size(), 2u);
        auto all = s.read_all(Checkpoint{}, 10);
        ASSERT_EQ(all.size(), 1u);
        EXPECT_EQ(all[0].checkpoint(), first.checkpoint);
    });
    EXPECT_EQ(this->read_all(Checkpoint{}, 2).size(), 2u);
}

TYPED_TEST_P(StoreContract, ReadsAllInCommitOrderAfterACheckpoint) {
    auto& store = this->store();
    store.append("order-a", ExpectedVersion::any(), {new_event("A1")});
    store.append("payment-b", ExpectedVersion::any(), {new_event("B1"), new_event("B2")});
    store.transact([](Session& s) {
        s.append("order-a", ExpectedVersion::exact(1), {new_event("A2")});
        s.append("order-c", ExpectedVersion::no_stream(), {new_event("C1")});
    });
    auto all = this->read_all(Checkpoint{}, 5);
    ASSERT_EQ(all.size(), 5u);
    std::vector<std::string> types;
    for (std::size_t i = 0; i < all.size(); ++i) {
        types.push_back(all[i].type);
        if (i > 0) {
            EXPECT_LT(all[i - 1].checkpoint(), all[i].checkpoint());
        }
    }
    EXPECT_EQ(types, (std::vector<std::string>{"A1", "B1", "B2", "A2", "C1"}));
    // One transaction: one transaction id for everything it appended.
    EXPECT_EQ(all[1].transaction_id, all[2].transaction_id);
    EXPECT_EQ(all[3].transaction_id, all[4].transaction_id);
    EXPECT_NE(all[0].transaction_id, all[1].transaction_id);

    auto after = store.read_all(all[2].checkpoint(), 100);
    ASSERT_EQ(after.size(), 2u);
    EXPECT_EQ(after[0].type, "A2");
    auto bounded = store.read_all(Checkpoint{}, 2);
    EXPECT_EQ(bounded.size(), 2u);
    EXPECT_TRUE(store.read_all(all[4].checkpoint(), 100).empty());
}

TYPED_TEST_P(StoreContract, SnapshotsOfOneFormatAndNeverOlder) {
    auto& store = this->store();
    store.append("order-s", ExpectedVersion::any(), {new_event("A"), new_event("B")});
    store.transact([](Session& s) {
        EXPECT_FALSE(s.lock_stream("order-s", 2));
        s.save_snapshot("order-s", {2, {{"state", 2}}}, 2);
        auto seen = s.lock_stream("order-s", 2);  // a session sees its own writes
        ASSERT_TRUE(seen);
        EXPECT_EQ(seen->version, 2);
    });
    store.transact([](Session& s) {
        auto snapshot = s.lock_stream("order-s", 2);
        ASSERT_TRUE(snapshot);
        EXPECT_EQ(snapshot->version, 2);
        EXPECT_EQ(snapshot->state, (nlohmann::json{{"state", 2}}));
        EXPECT_FALSE(s.lock_stream("order-s", 1));           // another format is not this one's
        s.save_snapshot("order-s", {1, {{"state", 1}}}, 2);  // older: kept out
    });
    store.transact([](Session& s) {
        EXPECT_EQ(s.lock_stream("order-s", 2)->version, 2);
        s.save_snapshot("order-s", {3, {{"state", 3}}}, 2);
        EXPECT_EQ(s.lock_stream("order-s", 2)->state, (nlohmann::json{{"state", 3}}));
        EXPECT_FALSE(s.lock_stream("order-none", 2));
    });
}

// `read` (a session's lock_and_read, or the store's read_head) of `stream`, which holds
// three events (`appended`) and a snapshot of format 2 at version 2, and of a stream that
// does not exist.
void expect_heads(const std::function<eventstore::StreamHead(const std::string&, int, std::size_t,
                                                             std::int64_t)>& read,
                  const std::string& stream, const eventstore::AppendResult& appended) {
    const auto at = [&](int index) {
        return Checkpoint{appended.checkpoint.transaction_id, appended.positions[index]};
    };
    auto head = read(stream, 2, 100, 0);
    EXPECT_EQ(head.version, 3);
    ASSERT_TRUE(head.snapshot);
    EXPECT_EQ(head.snapshot->version, 2);
    EXPECT_EQ(head.snapshot->state, (nlohmann::json{{"state", 2}}));
    EXPECT_EQ(head.snapshot_at, at(1));
    EXPECT_FALSE(head.known_at);
    ASSERT_EQ(head.events.size(), 1u);
    EXPECT_EQ(head.events[0].version, 3);
    // Another format has no snapshot here; the events are bounded.
    auto other = read(stream, 1, 2, 0);
    EXPECT_FALSE(other.snapshot);
    ASSERT_EQ(other.events.size(), 2u);
    EXPECT_EQ(other.events[1].version, 2);
    auto none = read(stream + "-none", 2, 100, 0);
    EXPECT_EQ(none.version, 0);
    EXPECT_TRUE(none.events.empty());
    EXPECT_FALSE(none.snapshot);

    // A caller with a fold at version 1 gets the snapshot, which is past it.
    auto past = read(stream, 2, 100, 1);
    ASSERT_TRUE(past.snapshot);
    EXPECT_EQ(past.snapshot->version, 2);
    EXPECT_FALSE(past.known_at);
    ASSERT_EQ(past.events.size(), 1u);
    // One at the snapshot's version or later gets no snapshot, its event's checkpoint, and
    // the events after it, bounded.
    auto known = read(stream, 2, 100, 2);
    EXPECT_FALSE(known.snapshot);
    EXPECT_EQ(known.known_at, at(1));
    ASSERT_EQ(known.events.size(), 1u);
    EXPECT_EQ(known.events[0].version, 3);
    auto bounded = read(stream, 1, 1, 1);
    EXPECT_EQ(bounded.known_at, at(0));
    ASSERT_EQ(bounded.events.size(), 1u);
    EXPECT_EQ(bounded.events[0].version, 2);
    auto current = read(stream, 2, 100, 3);
    EXPECT_EQ(current.version, 3);
    EXPECT_EQ(current.known_at, at(2));
    EXPECT_TRUE(current.events.empty());
    // A fold past the stream's end finds no event at its version.
    auto beyond = read(stream, 2, 100, 5);
    EXPECT_EQ(beyond.version, 3);
    EXPECT_FALSE(beyond.known_at);
    EXPECT_FALSE(beyond.snapshot);
    EXPECT_TRUE(beyond.events.empty());
}

TYPED_TEST_P(StoreContract, LockAndReadGivesTheSnapshotAndTheEventsAfterIt) {
    auto& store = this->store();
    auto appended = store.append("order-h", ExpectedVersion::any(),
                                 {new_event("A"), new_event("B"), new_event("C")});
    store.transact([](Session& s) {
        auto head = s.lock_and_read("order-h", 2, 100, 0);
        EXPECT_EQ(head.version, 3);
        EXPECT_FALSE(head.snapshot);
        EXPECT_FALSE(head.snapshot_at);
        ASSERT_EQ(head.events.size(), 3u);
        EXPECT_EQ(head.events[0].version, 1);
        EXPECT_EQ(head.events[2].type, "C");
        s.save_snapshot("order-h", {2, {{"state", 2}}}, 2);
    });
    store.transact([&](Session& s) {
        expect_heads(
            [&](const std::string& stream, int format, std::size_t max_count, std::int64_t known) {
                return s.lock_and_read(stream, format, max_count, known);
            },
            "order-h", appended);
    });
    store.transact([](Session& s) {
        s.save_snapshot("order-h", {3, {{"state", 3}}}, 2);
        auto head = s.lock_and_read("order-h", 2, 100, 0);  // a session sees its own writes
        EXPECT_EQ(head.snapshot->version, 3);
        EXPECT_TRUE(head.snapshot_at);
        EXPECT_TRUE(head.events.empty());
    });
}

// The store's read of a head gives what a session's lock_and_read gives, and holds nothing
// once it returns: an append at the version read goes through at once.
TYPED_TEST_P(StoreContract, ReadHeadReadsWhatLockAndReadReads) {
    auto& store = this->store();
    auto appended = store.append("order-rh", ExpectedVersion::any(),
                                 {new_event("A"), new_event("B"), new_event("C")});
    store.transact([](Session& s) { s.save_snapshot("order-rh", {2, {{"state", 2}}}, 2); });
    expect_heads(
        [&](const std::string& stream, int format, std::size_t max_count, std::int64_t known) {
            return store.read_head(stream, format, max_count, known, std::nullopt);
        },
        "order-rh", appended);
    // Nothing held: an append at the version read goes through at once, and the next read
    // sees it.
    store.append("order-rh", ExpectedVersion::exact(3), {new_event("D")});
    EXPECT_EQ(store.read_head("order-rh", 2, 100, 0, std::nullopt).version, 4);
}

// A session that waited for another's lock gets the version that writer left, and reading
// on from its head reaches it: what a command decides on is the stream as it is.
TYPED_TEST_P(StoreContract, LockAndReadAfterAWaitReachesTheVersionTheLockGave) {
    auto& store = this->store();
    store.append("order-head-turns", ExpectedVersion::no_stream(), {new_event("Opened")});
    std::atomic<int> short_of_version{0};
    const int conflicts = take_turns(store, [&](Session& s) {
        auto head = s.lock_and_read("order-head-turns", 2, 1000, 0);
        std::int64_t seen = head.events.empty() ? 0 : head.events.back().version;
        if (seen < head.version) {
            ++short_of_version;
            auto rest = s.read_stream("order-head-turns", seen + 1, 1000);
            if (!rest.empty()) seen = rest.back().version;
        }
        EXPECT_EQ(seen, head.version);
        s.append("order-head-turns", ExpectedVersion::exact(head.version), {new_event("T")});
    });
    EXPECT_EQ(conflicts, 0);
    EXPECT_EQ(store.stream_version("order-head-turns"), 1 + kTurns);
    std::printf("heads short of their version after a wait: %d of %d\n", short_of_version.load(),
                kTurns);
}

TYPED_TEST_P(StoreContract, FindsTheCheckpointOfAStreamVersion) {
    auto& store = this->store();
    auto appended =
        store.append("order-p", ExpectedVersion::any(), {new_event("A"), new_event("B")});
    store.transact([&](Session& s) {
        EXPECT_EQ(s.checkpoint_at("order-p", 2), appended.checkpoint);
        EXPECT_EQ(s.checkpoint_at("order-p", 1)->position, appended.positions[0]);
        EXPECT_FALSE(s.checkpoint_at("order-p", 3));
        EXPECT_FALSE(s.checkpoint_at("order-none", 1));
        EXPECT_EQ(s.stream_version("order-p"), 2);
        EXPECT_EQ(s.stream_version("order-none"), 0);
    });
}

TYPED_TEST_P(StoreContract, TheCommandLogClaimsReplaysAndRefusesAKey) {
    auto& store = this->store();
    store.transact([](Session& s) {
        EXPECT_TRUE(std::holds_alternative<KeyClaimed>(s.claim_key("http:k", "asked", "order-1")));
        s.record_outcome("http:k", 201, {{"done", true}});
    });
    store.transact([](Session& s) {
        auto claim = s.claim_key("http:k", "asked", "order-1");
        ASSERT_TRUE(std::holds_alternative<KeyFinished>(claim));
        EXPECT_EQ(std::get<KeyFinished>(claim).status, 201);
        EXPECT_EQ(std::get<KeyFinished>(claim).response, (nlohmann::json{{"done", true}}));
        EXPECT_TRUE(std::holds_alternative<KeyTakenByOtherRequest>(
            s.claim_key("http:k", "other", "order-1")));
        EXPECT_TRUE(std::holds_alternative<KeyClaimed>(s.claim_key("http:k2", "other", "order-1")));
    });
}

TYPED_TEST_P(StoreContract, ExpiresKeysOlderThanTheCutoffInBoundedBatches) {
    auto& store = this->store();
    store.transact([](Session& s) {
        for (int i = 0; i < 5; ++i) s.claim_key("old-" + std::to_string(i), "f", "order-1");
    });
    this->harness_.let_time_pass();
    const auto cutoff = store.key_cutoff(std::chrono::hours{0});
    store.transact([](Session& s) { s.claim_key("new", "f", "order-1"); });
    EXPECT_EQ(store.expire_keys(store.key_cutoff(std::chrono::hours{48}), 10), 0);
    EXPECT_EQ(store.expire_keys(cutoff, 2), 2);
    EXPECT_EQ(store.expire_keys(cutoff, 2), 2);
    EXPECT_EQ(store.expire_keys(cutoff, 2), 1);
    EXPECT_EQ(store.expire_keys(cutoff, 2), 0);
    store.transact([](Session& s) {
        EXPECT_TRUE(std::holds_alternative<KeyFinished>(s.claim_key("new", "f", "order-1")));
        EXPECT_TRUE(std::holds_alternative<KeyClaimed>(s.claim_key("old-0", "f", "order-1")));
    });
}

TYPED_TEST_P(StoreContract, AFailedSessionLeavesNothingBehind) {
    auto& store = this->store();
    store.append("order-f", ExpectedVersion::any(), {new_event("A")});
    EXPECT_THROW(store.transact([](Session& s) {
        s.claim_key("http:f", "asked", "order-1");
        s.append("order-f", ExpectedVersion::exact(1), {new_event("B")});
        s.append("order-g", ExpectedVersion::no_stream(), {new_event("C")});
        s.save_snapshot("order-f", {2, {{"state", 2}}}, 2);
        EXPECT_EQ(s.stream_version("order-f"), 2);
        throw std::runtime_error("the unit failed");
    }),
                 std::runtime_error);
    EXPECT_EQ(store.stream_version("order-f"), 1);
    EXPECT_EQ(store.stream_version("order-g"), 0);
    auto marker = store.append("order-h", ExpectedVersion::any(), {new_event("Marker")});
    auto all = this->read_all(Checkpoint{}, 2);
    ASSERT_EQ(all.size(), 2u);
    EXPECT_EQ(all[1].checkpoint(), marker.checkpoint);
    store.transact([](Session& s) {
        EXPECT_FALSE(s.lock_stream("order-f", 2));
        EXPECT_TRUE(std::holds_alternative<KeyClaimed>(s.claim_key("http:f", "asked", "order-1")));
    });
    // A refusal inside a session rolls it back as well when it propagates.
    EXPECT_THROW(store.transact([](Session& s) {
        s.append("order-f", ExpectedVersion::exact(1), {new_event("B")});
        s.append("order-f", ExpectedVersion::exact(1), {new_event("B2")});
    }),
                 ConcurrencyConflict);
    EXPECT_EQ(store.stream_version("order-f"), 1);
}

TYPED_TEST_P(StoreContract, ConcurrentAppendersWithExactVersionsGetOneWinnerPerVersion) {
    auto& store = this->store();
    constexpr int kWriters = 6;
    constexpr int kEach = 15;
    std::atomic<int> conflicts{0};
    std::mutex mutex;
    std::map<std::int64_t, std::pair<int, int>> winners;  // version -> the write told it
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
        writers.emplace_back([&, w] {
            for (int i = 0; i < kEach;) {
                auto version = store.stream_version("order-hot");
                auto expected =
                    version == 0 ? ExpectedVersion::no_stream() : ExpectedVersion::exact(version);
                try {
                    auto appended = store.append("order-hot", expected,
                                                 {new_event("W", {{"writer", w}, {"i", i}})});
                    std::lock_guard lock{mutex};
                    EXPECT_TRUE(winners.emplace(appended.last_version, std::pair{w, i}).second)
                        << "version " << appended.last_version << " won twice";
                    ++i;
                } catch (const ConcurrencyConflict&) {
                    ++conflicts;
                }
            }
        });
    }
    for (auto& t : writers) t.join();
    const std::vector<eventstore::RecordedEvent> events = store.read_stream("order-hot", 1, 1000);
    ASSERT_EQ(events.size(), std::size_t{kWriters * kEach});
    EXPECT_EQ(winners.size(), events.size());
    std::set<std::pair<int, int>> written;
    for (std::size_t i = 0; i < events.size(); ++i) {
        EXPECT_EQ(events[i].version, static_cast<std::int64_t>(i + 1));
        const std::pair write{events[i].payload["writer"].get<int>(),
                              events[i].payload["i"].get<int>()};
        written.insert(write);
        // The version an append reported is the one its event holds.
        EXPECT_EQ(winners[events[i].version], write) << "at version " << events[i].version;
    }
    EXPECT_EQ(written.size(), std::size_t{kWriters * kEach});  // each write landed once
}

TYPED_TEST_P(StoreContract, SessionsThatLockAStreamTakeTurnsOnIt) {
    auto& store = this->store();
    // lock_stream locks an existing stream only: the stream exists before the race.
    store.append("order-turns", ExpectedVersion::no_stream(), {new_event("Opened")});
    const int conflicts = take_turns(store, [](Session& s) {
        s.lock_stream("order-turns", 2);
        auto version = s.stream_version("order-turns");
        s.append("order-turns", ExpectedVersion::exact(version), {new_event("T")});
    });
    EXPECT_EQ(conflicts, 0);
    EXPECT_EQ(store.stream_version("order-turns"), 1 + kTurns);
}

TYPED_TEST_P(StoreContract, ConcurrentClaimsOfOneKeyMakeOneOwner) {
    auto& store = this->store();
    constexpr int kClaimers = 6;
    std::atomic<int> claimed{0};
    std::atomic<int> finished{0};
    std::vector<std::thread> claimers;
    for (int c = 0; c < kClaimers; ++c) {
        claimers.emplace_back([&] {
            store.transact([&](Session& s) {
                auto claim = s.claim_key("cmd:once", "asked", "order-1");
                if (std::holds_alternative<KeyClaimed>(claim)) {
                    ++claimed;
                    s.record_outcome("cmd:once", 200, {{"ok", true}});
                } else if (std::holds_alternative<KeyFinished>(claim) &&
                           std::get<KeyFinished>(claim).status == 200) {
                    ++finished;
                }
            });
        });
    }
    for (auto& t : claimers) t.join();
    EXPECT_EQ(claimed.load(), 1);
    EXPECT_EQ(finished.load(), kClaimers - 1);
}

REGISTER_TYPED_TEST_SUITE_P(
    StoreContract, LockAndReadGivesTheSnapshotAndTheEventsAfterIt,
    ReadHeadReadsWhatLockAndReadReads, LockAndReadAfterAWaitReachesTheVersionTheLockGave,
    AppendsAndReadsAStreamInVersionOrderAPageAtATime, ReadsManyStreamsAsEachAloneInTheOrderAsked,
    KeepsMetadataAndSchemaVersion, ReadsUpcastOldSchemaVersionsAndNeverRewriteThem,
    ReadingASchemaVersionNewerThanKnownFails, ExpectedVersionsConflictWithTheActualVersion,
    ReAppendingStoredEventsReplaysAndWritesNothing,
    AnEventIdStoredWithOtherContentOrElsewhereIsReused, RefusesInvalidInputWithTheSameTexts,
    ASessionReadsAllOnlyWhatIsCommitted, ReadsAllInCommitOrderAfterACheckpoint,
    SnapshotsOfOneFormatAndNeverOlder, FindsTheCheckpointOfAStreamVersion,
    TheCommandLogClaimsReplaysAndRefusesAKey, ExpiresKeysOlderThanTheCutoffInBoundedBatches,
    AFailedSessionLeavesNothingBehind, ConcurrentAppendersWithExactVersionsGetOneWinnerPerVersion,
    SessionsThatLockAStreamTakeTurnsOnIt, ConcurrentClaimsOfOneKeyMakeOneOwner);

}  // namespace ordo::testing
