// The in-memory event store: the tables as containers, one mutex, sessions that roll back
// to a copy.
#include "eventstore/memory_store.hpp"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <ctime>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>

#include "platform/core/clock.hpp"
#include "platform/core/errors.hpp"

namespace ordo::eventstore {
namespace {

struct SnapshotRow {
    Snapshot snapshot;
    int format = 0;
};

struct KeyRow {
    std::string fingerprint;
    int status = 0;
    nlohmann::json response;
    KeyCutoff created_at;
};

// Everything the store holds; copied whole at the start of a session to roll back to.
struct Tables {
    std::vector<RecordedEvent> events;  // in commit order; position = index + 1
    std::map<std::string, std::vector<std::size_t>> streams;   // stream -> indexes by version
    std::unordered_map<std::string, std::size_t> by_event_id;  // lower-case id -> index
    std::map<std::string, SnapshotRow> snapshots;
    std::map<std::string, KeyRow> keys;
    std::uint64_t last_transaction = 0;
};

// PostgreSQL stores UUIDs as values: compare and return them in canonical lower case.
std::string canonical(std::string id) {
    for (auto& c : id) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return id;
}

std::string rfc3339(std::chrono::system_clock::time_point at) {
    const auto micros = std::chrono::floor<std::chrono::microseconds>(at);
    const auto seconds = std::chrono::floor<std::chrono::seconds>(micros);
    const std::time_t t = std::chrono::system_clock::to_time_t(seconds);
    std::tm tm{};
    gmtime_r(&t, &tm);
    char text[64];
    std::snprintf(text, sizeof text, "%04d-%02d-%02dT%02d:%02d:%02d.%06lldZ", tm.tm_year + 1900,
                  tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                  static_cast<long long>((micros - seconds).count()));
    return text;
}

std::int64_t version_of(const Tables& t, const std::string& stream) {
    auto it = t.streams.find(stream);
    return it == t.streams.end() ? 0 : static_cast<std::int64_t>(it->second.size());
}

std::vector<RecordedEvent> read_stream_of(const Tables& t, const std::string& stream,
                                          std::int64_t from_version, std::size_t max_count) {
    std::vector<RecordedEvent> out;
    auto it = t.streams.find(stream);
    if (it == t.streams.end()) return out;
    const auto& indexes = it->second;
    for (auto v = std::max<std::int64_t>(from_version, 1);
         v <= static_cast<std::int64_t>(indexes.size()) && out.size() < max_count; ++v) {
        out.push_back(t.events[indexes[static_cast<std::size_t>(v - 1)]]);
    }
    return out;
}

// `running`: the reading session's own transaction (0: none), whose appends are not
// committed and so, as on PostgreSQL (they sit above the horizon), not read.
std::vector<RecordedEvent> read_all_of(const Tables& t, Checkpoint after, std::size_t max_count,
                                       std::uint64_t running = 0) {
    auto first = std::upper_bound(
        t.events.begin(), t.events.end(), after,
        [](const Checkpoint& c, const RecordedEvent& e) { return c < e.checkpoint(); });
    std::vector<RecordedEvent> out;
    for (auto it = first; it != t.events.end() && out.size() < max_count; ++it) {
        if (running != 0 && it->transaction_id == running) break;  // the newest: all after it
        out.push_back(*it);
    }
    return out;
}

// ordo.append_events, clause by clause; `transaction` is the appender's transaction id,
// taken from the tables' counter at its first append.
AppendResult append_to(Tables& t, const platform::Clock& clock, std::uint64_t& transaction,
                       const std::string& stream, ExpectedVersion expected,
                       const std::vector<NewEvent>& events) {
    check_append(stream, events);
    const auto current = version_of(t, stream);

    // Events of this batch already stored: all of them, same content, at the same place,
    // make a replay; anything else is a reused id.
    std::size_t found = 0;
    bool same = true;
    std::set<std::int64_t> bases;
    std::optional<std::string> bad;
    std::optional<std::string> first_found;
    for (std::size_t i = 0; i < events.size(); ++i) {
        auto stored = t.by_event_id.find(canonical(events[i].event_id));
        if (stored == t.by_event_id.end()) continue;
        const auto& e = t.events[stored->second];
        ++found;
        if (!first_found) first_found = e.event_id;
        bases.insert(e.version - static_cast<std::int64_t>(i + 1));
        if (e.stream_id != stream || e.type != events[i].type || e.payload != events[i].payload) {
            same = false;
            if (!bad || e.event_id < *bad) bad = e.event_id;
        }
    }
    if (found > 0) {
        if (found < events.size() || !same || bases.size() != 1) {
            throw EventIdReused(bad ? *bad : *first_found);
        }
        if (!expected.is_any() && expected.encoded() != *bases.begin()) {
            throw ConcurrencyConflict(stream, expected, current);
        }
        AppendResult result{};
        result.replayed = true;
        for (const auto& event : events) {
            const auto& e = t.events[t.by_event_id.at(canonical(event.event_id))];
            result.positions.push_back(e.position);
            result.checkpoint = e.checkpoint();
        }
        result.first_version =
            t.events[t.by_event_id.at(canonical(events.front().event_id))].version;
        result.last_version = t.events[t.by_event_id.at(canonical(events.back().event_id))].version;
        return result;
    }
    if (!expected.is_any() && expected.encoded() != current) {
        throw ConcurrencyConflict(stream, expected, current);
    }

    if (transaction == 0) transaction = ++t.last_transaction;
    const auto recorded_at = rfc3339(clock.now());
    auto& indexes = t.streams[stream];
    AppendResult result{};
    result.replayed = false;
    for (const auto& event : events) {
        const auto position = static_cast<std::int64_t>(t.events.size()) + 1;
        const auto version = static_cast<std::int64_t>(indexes.size()) + 1;
        t.events.push_back(RecordedEvent{
            position, transaction, stream, category_of(stream), version, canonical(event.event_id),
            event.type, event.schema_version, event.payload, event.metadata, recorded_at});
        indexes.push_back(t.events.size() - 1);
        t.by_event_id.emplace(t.events.back().event_id, t.events.size() - 1);
        result.positions.push_back(position);
        result.checkpoint = t.events.back().checkpoint();
    }
    result.first_version = current + 1;
    result.last_version = current + static_cast<std::int64_t>(events.size());
    return result;
}

KeyCutoff now_of(const platform::Clock& clock) {
    return std::chrono::floor<std::chrono::microseconds>(clock.now());
}

// A session works on the live tables while it holds the store's mutex; the store restores
// the copy taken at its start when it ends by an exception.
class MemorySession final : public Session {
   public:
    MemorySession(Tables& tables, const platform::Clock& clock, const Upcasters* upcasters)
        : t_{tables}, clock_{clock}, upcasters_{upcasters} {}

    std::vector<RecordedEvent> read_stream(const std::string& stream, std::int64_t from_version,
                                           std::size_t max_count) override {
        return upcast_all(upcasters_, read_stream_of(t_, stream, from_version, max_count));
    }
    std::vector<RecordedEvent> read_all(Checkpoint after, std::size_t max_count) override {
        return upcast_all(upcasters_, read_all_of(t_, after, max_count, transaction_));
    }
    AppendResult append(const std::string& stream, ExpectedVersion expected,
                        const std::vector<NewEvent>& events) override {
        return append_to(t_, clock_, transaction_, stream, expected, events);
    }
    std::optional<Snapshot> lock_stream(const std::string& stream, int format) override {
        // The session holds the whole store already.
        auto it = t_.snapshots.find(stream);
        if (it == t_.snapshots.end() || it->second.format != format) return std::nullopt;
        return it->second.snapshot;
    }
    void save_snapshot(const std::string& stream, const Snapshot& snapshot, int format) override {
        auto [it, inserted] = t_.snapshots.try_emplace(stream, SnapshotRow{snapshot, format});
        if (!inserted && it->second.snapshot.version < snapshot.version) {
            it->second = SnapshotRow{snapshot, format};
        }
    }
    std::optional<Checkpoint> checkpoint_at(const std::string& stream,
                                            std::int64_t version) override {
        auto it = t_.streams.find(stream);
        if (it == t_.streams.end() || version < 1 ||
            version > static_cast<std::int64_t>(it->second.size())) {
            return std::nullopt;
        }
        return t_.events[it->second[static_cast<std::size_t>(version - 1)]].checkpoint();
    }
    std::int64_t stream_version(const std::string& stream) override {
        return version_of(t_, stream);
    }
    KeyClaim claim_key(const std::string& key, const std::string& fingerprint,
                       const std::string&) override {
        auto [it, inserted] =
            t_.keys.try_emplace(key, KeyRow{fingerprint, 0, nullptr, now_of(clock_)});
        if (inserted) return KeyClaimed{};
        if (it->second.fingerprint != fingerprint) return KeyTakenByOtherRequest{};
        return KeyFinished{it->second.status, it->second.response};
    }
    void record_outcome(const std::string& key, int status,
                        const nlohmann::json& response) override {
        auto it = t_.keys.find(key);
        if (it == t_.keys.end()) return;  // as an UPDATE of no row
        it->second.status = status;
        it->second.response = response;
    }

   private:
    Tables& t_;
    const platform::Clock& clock_;
    const Upcasters* upcasters_;
    std::uint64_t transaction_ = 0;
};

}  // namespace

class MemoryStore::Impl {
   public:
    Impl(const Upcasters* u, const platform::Clock* c)
        : clock{c != nullptr ? *c : own_clock}, upcasters{u} {}
    platform::SystemClock own_clock;
    const platform::Clock& clock;
    const Upcasters* upcasters;
    std::timed_mutex mutex;
    Tables tables;
};

MemoryStore::MemoryStore() : MemoryStore(nullptr, nullptr) {}

MemoryStore::MemoryStore(const platform::Clock& clock) : MemoryStore(nullptr, &clock) {}

MemoryStore::MemoryStore(const Upcasters* upcasters, const platform::Clock* clock)
    : impl_{std::make_unique<Impl>(upcasters, clock)} {}

MemoryStore::~MemoryStore() = default;

std::vector<RecordedEvent> MemoryStore::read_stream(const std::string& stream,
                                                    std::int64_t from_version,
                                                    std::size_t max_count) {
    std::lock_guard lock{impl_->mutex};
    return upcast_all(impl_->upcasters,
                      read_stream_of(impl_->tables, stream, from_version, max_count));
}

std::vector<RecordedEvent> MemoryStore::read_all(Checkpoint after, std::size_t max_count) {
    std::lock_guard lock{impl_->mutex};
    return upcast_all(impl_->upcasters, read_all_of(impl_->tables, after, max_count));
}

AppendResult MemoryStore::append(const std::string& stream, ExpectedVersion expected,
                                 const std::vector<NewEvent>& events) {
    std::lock_guard lock{impl_->mutex};
    // Atomic without a copy: append_to refuses before it changes anything.
    std::uint64_t transaction = 0;
    return append_to(impl_->tables, impl_->clock, transaction, stream, expected, events);
}

std::int64_t MemoryStore::stream_version(const std::string& stream) {
    std::lock_guard lock{impl_->mutex};
    return version_of(impl_->tables, stream);
}

KeyCutoff MemoryStore::key_cutoff(std::chrono::hours age) {
    return now_of(impl_->clock) - age;
}

std::int64_t MemoryStore::expire_keys(KeyCutoff cutoff, std::int64_t batch) {
    std::lock_guard lock{impl_->mutex};
    auto& keys = impl_->tables.keys;
    std::vector<std::map<std::string, KeyRow>::iterator> old;
    for (auto it = keys.begin(); it != keys.end(); ++it) {
        if (it->second.created_at < cutoff) old.push_back(it);
    }
    std::sort(old.begin(), old.end(), [](const auto& a, const auto& b) {
        return a->second.created_at < b->second.created_at;
    });
    if (static_cast<std::int64_t>(old.size()) > batch) old.resize(static_cast<std::size_t>(batch));
    for (auto it : old) keys.erase(it);
    return static_cast<std::int64_t>(old.size());
}

std::size_t MemoryStore::key_count() {
    std::lock_guard lock{impl_->mutex};
    return impl_->tables.keys.size();
}

void MemoryStore::run_session(std::optional<Deadline> deadline,
                              const std::function<void(Session&)>& work) {
    std::unique_lock lock{impl_->mutex, std::defer_lock};
    if (deadline) {
        if (!lock.try_lock_until(*deadline)) {
            throw platform::Overloaded("the in-memory store stayed busy until the deadline");
        }
    } else {
        lock.lock();
    }
    auto before = impl_->tables;
    MemorySession session{impl_->tables, impl_->clock, impl_->upcasters};
    try {
        work(session);
    } catch (...) {
        impl_->tables = std::move(before);
        throw;
    }
}

}  // namespace ordo::eventstore
