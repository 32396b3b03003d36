#include "query/subscriptions.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <utility>
#include <vector>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "eventstore/event_store.hpp"
#include "platform/core/metrics.hpp"
#include "platform/pg/pg.hpp"

namespace ordo::query {

using eventstore::Checkpoint;
using eventstore::EventStore;
using Clock = std::chrono::steady_clock;

namespace {

// How soon a reader catching up that had too much unsent is looked at again.
constexpr std::chrono::milliseconds kRoomCheck{20};

struct Subscriber {
    platform::http::Stream stream;
    EventSelection selection;
    FeedPosition position;   // everything selected up to here is sent
    std::vector<bool> live;  // per source: reading what comes after its head
    Clock::time_point last_sent;
    std::uint64_t last_written = 0;
    Clock::time_point progress_at;  // when bytes were last written (or none were waiting)
};

// How long a source whose read failed is left alone, at first and at most: a shard whose host
// does not answer costs a connect timeout per read, which must not hold up the others'
// subscribers every round.
constexpr std::chrono::milliseconds kFirstBackoff{1000};
constexpr std::chrono::milliseconds kMaxBackoff{5000};

// A shard the subscriptions read, and the thread's state of it.
struct SourceState {
    int shard;
    platform::pg::Pool* pool;
    std::string listen_url;
    std::optional<Checkpoint> head;  // the newest event read below its horizon
    // What the last live read found after `head`, asked right after it in the same
    // connection (EventStore::unread_after).
    eventstore::EventStore::Unread left;
    // After a failed read: not read again before `retry_at`, the wait doubling each time.
    Clock::time_point retry_at{};
    std::chrono::milliseconds backoff{0};

    bool resting(Clock::time_point now) const { return now < retry_at; }
};

}  // namespace

struct Subscriptions::Impl {
    Impl(ShardSources& sources, const eventstore::Upcasters* upcasters, Options options,
         platform::Logger log, platform::metrics::Registry* metrics)
        : set_{sources}, upcasters_{upcasters}, options_{options}, log_{std::move(log)} {
        if (metrics) {
            subscribers_gauge_ =
                &metrics->gauge("ordo_event_subscribers", "Open server-sent-event subscriptions");
            events_sent_ = &metrics->counter("ordo_event_subscription_events_total",
                                             "Events sent to subscribers");
            read_failures_ = &metrics->counter("ordo_event_subscription_read_failures_total",
                                               "Store reads for subscribers that failed");
            unreadable_ = &metrics->counter("ordo_event_subscription_unreadable_total",
                                            "Events sent as stored: they could not be upcast");
            for (const char* reason : {"slow_consumer", "stalled", "closed", "stopping"}) {
                ended_[reason] =
                    &metrics->counter("ordo_event_subscriptions_ended_total",
                                      "Subscriptions ended, by reason", {{"reason", reason}});
            }
        }
    }

    void release_place() {
        std::lock_guard lock{mutex_};
        --taken_;
    }

    void wake() {
        {
            std::lock_guard lock{mutex_};
            woken_ = true;
        }
        cv_.notify_one();
    }

    // The shards of sources_, in order.
    std::vector<int> shards() const {
        std::vector<int> ids;
        for (const auto& source : sources_) ids.push_back(source.shard);
        return ids;
    }

    void run();
    // Takes in the shards added to set_ since the last look: a source and a listener each,
    // and a place in every subscriber's position, from the shard's beginning.
    void follow_sources();
    void round(bool& more, bool& advanced, bool& waiting_for_room);
    // Once a round is over, what is left after the heads of the sources it read.
    eventstore::EventStore::Unread unread() const;
    // The live share of source `i`: what committed after its head, read once for all.
    void read_live(std::size_t i, bool& more, bool& advanced);
    // Source `i`'s next page of subscriber `s`'s selection; false when it has too much unsent.
    bool catch_up(Subscriber& s, std::size_t i, bool& more);
    // A read of source `i` failed: it rests, longer each time; read() ends the rest.
    void source_failed(std::size_t i, const char* what, const std::exception& e);
    void source_read(std::size_t i);
    void fan_out(std::size_t i, const std::vector<eventstore::RecordedEvent>& events,
                 Checkpoint up_to);
    void send(Subscriber& s, std::string bytes, Clock::time_point now);
    void end(Subscriber& s, const char* reason, const char* type, const std::string& detail);
    // as_current, counted and logged when the event must go as stored.
    eventstore::RecordedEvent current(eventstore::RecordedEvent event);
    void police(Clock::time_point now);

    ShardSources& set_;
    std::uint64_t generation_ = 0;  // set_'s, when sources_ was last made from it
    // In shard order, as FeedPosition keeps its shards. Their state is the thread's.
    std::vector<SourceState> sources_;
    const eventstore::Upcasters* upcasters_;
    const Options options_;
    platform::Logger log_;
    platform::metrics::Gauge* subscribers_gauge_ = nullptr;
    platform::metrics::Counter* events_sent_ = nullptr;
    platform::metrics::Counter* read_failures_ = nullptr;
    platform::metrics::Counter* unreadable_ = nullptr;
    std::map<std::string, platform::metrics::Counter*> ended_;

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool woken_ = false;
    bool stopping_ = false;
    std::size_t taken_ = 0;                              // places and subscribers
    std::vector<std::shared_ptr<Subscriber>> incoming_;  // guarded by mutex_
    std::atomic<std::size_t> count_{0};                  // subscribers, for subscribers()

    // The thread's own.
    std::vector<std::shared_ptr<Subscriber>> subscribers_;
    std::size_t rounds_ = 0;  // which source a subscriber catching up reads first
    // One per source; after mutex_ and cv_, which their callbacks (wake) use, so that they
    // go first.
    std::vector<std::unique_ptr<eventstore::AppendListener>> listeners_;
    std::thread thread_;
};

class Subscriptions::Place {
   public:
    explicit Place(std::shared_ptr<Impl> impl) : impl_{std::move(impl)} {}
    ~Place() {
        if (!used_) impl_->release_place();
    }
    Place(const Place&) = delete;
    Place& operator=(const Place&) = delete;

   private:
    friend class Subscriptions;
    std::shared_ptr<Impl> impl_;
    bool used_ = false;
};

Subscriptions::Subscriptions(ShardSources& sources, const eventstore::Upcasters* upcasters,
                             Options options, platform::Logger log,
                             platform::metrics::Registry* metrics)
    : impl_{std::make_shared<Impl>(sources, upcasters, options, std::move(log), metrics)} {
    impl_->follow_sources();
    Impl* impl = impl_.get();
    impl_->thread_ = std::thread{[impl] { impl->run(); }};
}

Subscriptions::~Subscriptions() {
    stop();
}

std::shared_ptr<Subscriptions::Place> Subscriptions::reserve() {
    {
        std::lock_guard lock{impl_->mutex_};
        if (impl_->stopping_ || impl_->taken_ >= impl_->options_.capacity) return nullptr;
        ++impl_->taken_;
    }
    return std::make_shared<Place>(impl_);
}

void Subscriptions::subscribe(std::shared_ptr<Place> place, FeedPosition after,
                              EventSelection selection, platform::http::Stream stream) {
    const auto known = impl_->set_.current();
    for (const int shard : after.shards()) {
        if (std::none_of(known.begin(), known.end(),
                         [&](const auto& k) { return k.shard == shard; })) {
            throw std::invalid_argument("a subscription starts from a position over its shards");
        }
    }
    // Its position over every source, and which it reads live, are made when the thread
    // takes it in (run).
    auto s = std::make_shared<Subscriber>(Subscriber{.stream = std::move(stream),
                                                     .selection = std::move(selection),
                                                     .position = std::move(after),
                                                     .live = {}});
    s->last_sent = s->progress_at = Clock::now();
    {
        std::lock_guard lock{impl_->mutex_};
        place->used_ = true;  // the subscriber holds the place from here
        if (impl_->stopping_) {
            --impl_->taken_;
            s->stream->send(sse_end("unavailable", "the service is stopping"));
            s->stream->end();
            return;
        }
        impl_->incoming_.push_back(std::move(s));
        impl_->woken_ = true;
    }
    impl_->cv_.notify_one();
}

std::size_t Subscriptions::subscribers() const {
    return impl_->count_.load();
}

void Subscriptions::stop() {
    {
        std::lock_guard lock{impl_->mutex_};
        if (impl_->stopping_ && !impl_->thread_.joinable()) return;
        impl_->stopping_ = true;
    }
    impl_->cv_.notify_one();
    if (impl_->thread_.joinable()) impl_->thread_.join();
    impl_->listeners_.clear();
}

void Subscriptions::Impl::run() {
    eventstore::HorizonWait horizon{options_.poll};
    // This round followed a look that found events to read: if it reads none again, the
    // thread waits all the same rather than spin.
    bool rereading = false;
    std::vector<std::shared_ptr<Subscriber>> incoming;
    while (true) {
        {
            std::lock_guard lock{mutex_};
            if (stopping_) break;
            woken_ = false;
            incoming.swap(incoming_);
        }
        // After taking them in: every shard a newcomer's position names was among the
        // sources when it subscribed, so it is among them now.
        follow_sources();
        for (auto& s : incoming) {
            s->position = s->position.over(shards());
            s->live.assign(sources_.size(), false);
            s->stream->send(sse_retry(options_.client_retry_ms));
            subscribers_.push_back(std::move(s));
        }
        incoming.clear();
        bool more = false;
        bool advanced = false;
        bool waiting_for_room = false;  // a reader catching up has too much unsent
        if (!subscribers_.empty()) round(more, advanced, waiting_for_room);
        police(Clock::now());
        count_ = subscribers_.size();
        if (subscribers_gauge_) subscribers_gauge_->set(static_cast<double>(subscribers_.size()));
        if (more) continue;
        if (advanced) rereading = false;
        // Asked after the round, of what comes after it: events that committed, or that the
        // horizon passed, since the round read its heads are read at once; hidden ones are
        // looked for again soon. A notification's events may have been hidden from the round,
        // and a horizon that passes notifies no one (docs/architecture.md, "When to ask").
        const auto left = subscribers_.empty() ? eventstore::EventStore::Unread{} : unread();
        if (left.readable && !std::exchange(rereading, true)) continue;
        rereading = false;
        auto wait = horizon.next(left.hidden_for.has_value());
        // Nothing says when a client has read its backlog: look again soon.
        if (waiting_for_room) wait = std::min(wait, kRoomCheck);
        // A resting source is read again once its rest is over, whatever the poll.
        const auto now = Clock::now();
        for (const auto& source : sources_) {
            if (!subscribers_.empty() && source.resting(now)) {
                wait = std::min(
                    wait, std::chrono::ceil<std::chrono::milliseconds>(source.retry_at - now));
            }
        }
        std::unique_lock lock{mutex_};
        cv_.wait_for(lock, wait, [this] { return woken_ || stopping_; });
    }
    for (auto& s : subscribers_) end(*s, "stopping", "unavailable", "the service is stopping");
    {
        std::lock_guard lock{mutex_};
        for (auto& s : incoming_) end(*s, "stopping", "unavailable", "the service is stopping");
        taken_ -= subscribers_.size() + incoming_.size();
        incoming_.clear();
    }
    subscribers_.clear();
    count_ = 0;
}

void Subscriptions::Impl::follow_sources() {
    const auto generation = set_.generation();
    if (generation == generation_ && !sources_.empty()) return;
    generation_ = generation;
    std::vector<SourceState> sources;
    for (auto& source : set_.current()) {
        auto known = std::find_if(sources_.begin(), sources_.end(),
                                  [&](const auto& s) { return s.shard == source.shard; });
        if (known != sources_.end()) {
            sources.push_back(std::move(*known));
            continue;
        }
        sources.push_back({source.shard, source.pool, source.listen_url, {}, {}, {}, {}});
        listeners_.push_back(std::make_unique<eventstore::AppendListener>(
            source.listen_url, log_.with_component("subscriptions.listen"),
            eventstore::AppendNotifier::kChannel, [this] { wake(); }));
        if (!subscribers_.empty()) {
            log_.info("reading the events of a shard added to the map",
                      {{"shard", source.shard}, {"subscribers", subscribers_.size()}});
        }
    }
    // Every subscriber's place in each shard, by shard: the new ones from their beginning.
    std::vector<int> ids;
    for (const auto& source : sources) ids.push_back(source.shard);
    for (auto& s : subscribers_) {
        std::vector<bool> live;
        for (const int id : ids) {
            const auto& had = s->position.shards();
            const auto at = std::find(had.begin(), had.end(), id);
            live.push_back(at != had.end() && s->live[static_cast<std::size_t>(at - had.begin())]);
        }
        s->position = s->position.over(ids);
        s->live = std::move(live);
    }
    sources_ = std::move(sources);
}

// One round: for each source, the live share in one read for all; then a bounded read for
// each subscriber catching up that has room, each on its own so that one failing read holds
// up no other. A source whose read failed rests (source_failed) and is not read meanwhile;
// its subscribers keep their place in it. Which source a subscriber catching up reads first
// turns each round, so that one shard's backlog cannot keep another's waiting.
void Subscriptions::Impl::round(bool& more, bool& advanced, bool& waiting_for_room) {
    const auto n = sources_.size();
    for (std::size_t i = 0; i < n; ++i) {
        if (!sources_[i].resting(Clock::now())) read_live(i, more, advanced);
    }
    const auto first = rounds_++ % n;
    for (auto& s : subscribers_) {
        for (std::size_t k = 0; k < n; ++k) {
            const auto i = (first + k) % n;
            if (s->live[i] || s->stream->ended() || !sources_[i].head ||
                sources_[i].resting(Clock::now())) {
                continue;
            }
            if (!catch_up(*s, i, more)) {
                waiting_for_room = true;
                break;
            }
        }
    }
}

eventstore::EventStore::Unread Subscriptions::Impl::unread() const {
    eventstore::EventStore::Unread left;
    for (const auto& source : sources_) {
        if (source.resting(Clock::now())) continue;
        left.readable = left.readable || source.left.readable;
        if (source.left.hidden_for) {
            left.hidden_for = std::max(left.hidden_for.value_or(0), *source.left.hidden_for);
        }
    }
    return left;
}

void Subscriptions::Impl::read_live(std::size_t i, bool& more, bool& advanced) {
    auto& source = sources_[i];
    source.left = {};
    try {
        source.pool->transact<pqxx::nontransaction>([&](auto& tx) {
            const bool any_live = std::any_of(subscribers_.begin(), subscribers_.end(),
                                              [&](const auto& s) { return s->live[i]; });
            auto newest = EventStore::head(tx).value_or(Checkpoint{});
            if (!any_live || !source.head) {
                // Nobody reads live: the head may jump, and those catching up go as far.
                advanced = advanced || !source.head || newest > *source.head;
                source.head = std::max(source.head.value_or(Checkpoint{}), newest);
            } else if (newest > *source.head) {
                auto events = EventStore::read_range(tx, *source.head, newest, {}, options_.page);
                const bool full = events.size() == options_.page;
                const Checkpoint up_to = full ? events.back().checkpoint() : newest;
                for (auto& e : events) e = current(std::move(e));
                fan_out(i, events, up_to);
                source.head = up_to;
                advanced = true;
                more = more || full;
                if (full) return;  // the next round reads on at once
            }
            // Asked after the read, of what comes after it (the caller's wait, run()).
            source.left = EventStore::unread_after(tx, *source.head);
        });
        source_read(i);
    } catch (const std::exception& e) {
        // The shard is away: subscribers keep their place and get heartbeats, and the other
        // shards go on.
        source_failed(i, "reading live events for subscribers failed", e);
    }
}

void Subscriptions::Impl::source_failed(std::size_t i, const char* what, const std::exception& e) {
    auto& source = sources_[i];
    if (read_failures_) read_failures_->inc();
    if (source.backoff.count() == 0) {
        log_.warn(what, {{"shard", source.shard}, {"error", e.what()}});
    }
    source.backoff = std::clamp(source.backoff * 2, kFirstBackoff, kMaxBackoff);
    source.retry_at = Clock::now() + source.backoff;
}

void Subscriptions::Impl::source_read(std::size_t i) {
    auto& source = sources_[i];
    if (source.backoff.count() > 0) {
        log_.info("a shard's events can be read again", {{"shard", source.shard}});
    }
    source.backoff = std::chrono::milliseconds{0};
    source.retry_at = {};
}

bool Subscriptions::Impl::catch_up(Subscriber& s, std::size_t i, bool& more) {
    const auto now = Clock::now();
    const std::size_t room = options_.max_buffered / 2;
    const auto head = *sources_[i].head;
    const auto pending = s.stream->pending();
    // Refilled once half of what it may have unsent is read: a reader that takes a few bytes
    // at a time does not cost a store read for every few bytes.
    if (pending >= room / 2) return false;
    if (s.position.at(i) >= head) {
        s.live[i] = true;
        return true;
    }
    bool had_room = true;
    try {
        sources_[i].pool->transact<pqxx::nontransaction>([&](auto& tx) {
            auto read =
                EventStore::read_selected(tx, s.position.at(i), head, s.selection.categories,
                                          s.selection.types, options_.page, options_.max_scan);
            // At most `room` unsent (one event more when a single one is larger): a reader
            // catching up is held back, never cut off.
            std::size_t used = pending;
            std::size_t sent = 0;
            for (; sent < read.events.size(); ++sent) {
                auto after = s.position;
                after.advance(i, read.events[sent].checkpoint());
                auto framed = sse_event(current(std::move(read.events[sent])), after);
                if (sent > 0 && used + framed.size() > room) break;
                used += framed.size();
                send(s, std::move(framed), now);
                s.position = std::move(after);
            }
            if (events_sent_) events_sent_->inc(static_cast<double>(sent));
            if (sent < read.events.size()) {
                had_room = false;
                return;
            }
            s.position.advance(i, read.read_to);
            if (s.position.at(i) >= head) {
                s.live[i] = true;
            } else {
                more = true;
            }
        });
        source_read(i);
    } catch (const std::exception& e) {
        source_failed(i, "reading events for a subscriber catching up failed", e);
    }
    return had_room;
}

eventstore::RecordedEvent Subscriptions::Impl::current(eventstore::RecordedEvent event) {
    return as_current(upcasters_, std::move(event),
                      [this](const eventstore::RecordedEvent& stored, const std::exception& why) {
                          if (unreadable_) unreadable_->inc();
                          log_.warn("an event is sent as stored: it cannot be upcast",
                                    {{"event_id", stored.event_id}, {"error", why.what()}});
                      });
}

// Each live subscriber's selection of what committed on source `i` after its head, up to
// `up_to`; a subscriber that started ahead of the head (it resumed from a position another
// replica or a page gave it) skips what it has. An event's JSON is made once, whoever gets
// it; each message then adds the subscriber's own position.
void Subscriptions::Impl::fan_out(std::size_t i,
                                  const std::vector<eventstore::RecordedEvent>& events,
                                  Checkpoint up_to) {
    const auto now = Clock::now();
    std::vector<std::string> bodies(events.size());
    for (auto& s : subscribers_) {
        if (!s->live[i] || s->stream->ended()) continue;
        std::size_t sent = 0;
        for (std::size_t e = 0; e < events.size(); ++e) {
            if (events[e].checkpoint() <= s->position.at(i) || !s->selection.matches(events[e])) {
                continue;
            }
            s->position.advance(i, events[e].checkpoint());
            if (bodies[e].empty()) bodies[e] = sse_body(events[e]);
            send(*s, sse_event(bodies[e], s->position), now);
            ++sent;
        }
        s->position.advance(i, up_to);
        if (events_sent_) events_sent_->inc(static_cast<double>(sent));
    }
}

void Subscriptions::Impl::send(Subscriber& s, std::string bytes, Clock::time_point now) {
    if (s.stream->send(std::move(bytes))) s.last_sent = now;
}

// The end of a stream the server chose: what is unsent goes, the reason takes its place.
void Subscriptions::Impl::end(Subscriber& s, const char* reason, const char* type,
                              const std::string& detail) {
    if (!s.stream->ended()) s.stream->abort(sse_end(type, detail));
    if (auto it = ended_.find(reason); it != ended_.end()) it->second->inc();
}

// Heartbeats for the quiet, the end for the slow and the stalled, and the ended let go.
void Subscriptions::Impl::police(Clock::time_point now) {
    std::size_t removed = 0;
    for (auto& s : subscribers_) {
        const auto pending = s->stream->pending();
        const auto written = s->stream->written();
        if (pending == 0 || written > s->last_written) s->progress_at = now;
        s->last_written = written;
        if (s->stream->ended()) {
            end(*s, "closed", "", "");
        } else if (pending > options_.max_buffered) {
            log_.info("a subscriber read too slowly and was cut off",
                      {{"unsent_bytes", pending}, {"position", s->position.token()}});
            end(*s, "slow_consumer", "slow_consumer",
                "the client read its events too slowly (over " +
                    std::to_string(options_.max_buffered) +
                    " bytes unsent); reconnect with Last-Event-ID to resume");
        } else if (pending > 0 && now - s->progress_at >= options_.stall) {
            log_.info("a subscriber read nothing for too long and was cut off",
                      {{"unsent_bytes", pending}, {"position", s->position.token()}});
            end(*s, "stalled", "slow_consumer",
                "the client read nothing for " +
                    std::to_string(
                        std::chrono::duration_cast<std::chrono::seconds>(options_.stall).count()) +
                    " s; reconnect with Last-Event-ID to resume");
        } else {
            if (pending == 0 && now - s->last_sent >= options_.heartbeat) {
                send(*s, sse_heartbeat(s->position), now);
            }
            continue;
        }
        s.reset();
        ++removed;
    }
    if (removed == 0) return;
    subscribers_.erase(std::remove(subscribers_.begin(), subscribers_.end(), nullptr),
                       subscribers_.end());
    std::lock_guard lock{mutex_};
    taken_ -= removed;
}

}  // namespace ordo::query
