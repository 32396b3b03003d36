// Slot leases: advisory locks on the runtime's session, balanced fairly over heartbeats.

#include "projections/slot_leases.hpp"

#include <algorithm>
#include <cerrno>
#include <system_error>

#include <sys/eventfd.h>
#include <unistd.h>

#include <pqxx/pqxx>

#include "eventstore/append_notifier.hpp"
#include "platform/core/partition.hpp"
#include "platform/pg/advisory_locks.hpp"
#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"

namespace ordo::projections {

int slot_lock_key(const std::string& projection) {
    return platform::pg::advisory_locks::projection_slot(projection);
}

std::size_t fair_share(std::size_t slots, std::size_t live_instances) {
    live_instances = std::max<std::size_t>(live_instances, 1);
    return (slots + live_instances - 1) / live_instances;
}

std::size_t search_start(const std::string& instance, std::size_t slots) {
    return slots == 0 ? 0 : platform::stream_hash(instance) % slots;
}

BalanceMoves rebalance(const std::vector<bool>& owned, std::size_t fair, std::size_t start,
                       const std::function<bool(std::size_t)>& try_take) {
    const auto n = owned.size();
    BalanceMoves moves;
    if (n == 0) return moves;
    auto holding = owned;
    auto held = static_cast<std::size_t>(std::count(holding.begin(), holding.end(), true));
    for (std::size_t i = 0; i < n && held < fair; ++i) {
        const auto s = (start + i) % n;
        if (holding[s] || !try_take(s)) continue;
        holding[s] = true;
        ++held;
        moves.taken.push_back(s);
    }
    for (std::size_t i = 0; i < n && held > fair; ++i) {
        const auto s = (start + n - 1 - i) % n;
        if (!holding[s]) continue;
        holding[s] = false;
        --held;
        moves.released.push_back(s);
    }
    return moves;
}

struct SlotLeases::Impl {
    explicit Impl(SlotLeaseOptions o) : options{std::move(o)} {
        if (bell < 0) throw std::system_error(errno, std::generic_category(), "eventfd");
    }
    ~Impl() { ::close(bell); }
    Impl(const Impl&) = delete;
    Impl& operator=(const Impl&) = delete;

    SlotLeaseOptions options;
    int bell = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);  // readable once live_event() rang
    PollDeadline poll;  // the look at the store that no notification asked for
    std::unique_ptr<platform::pg::Session> session;  // holds the advisory locks, listens
    std::unique_ptr<eventstore::AppendSubscription> appends;
    std::atomic<std::size_t> owned{0};  // read by other threads (owned_slots)
    eventstore::HorizonWait horizon_wait{options.poll_interval};
    bool hidden = false;  // at the last probe_horizon

    void drain_bell() const {
        std::uint64_t rung = 0;
        while (::read(bell, &rung, sizeof rung) > 0) {
        }
    }
};

SlotLeases::SlotLeases(SlotLeaseOptions options)
    : impl_{std::make_unique<Impl>(std::move(options))} {}

SlotLeases::~SlotLeases() {
    // A clean stop says goodbye: its heartbeat is set in the past, so the other instances
    // stop counting it at their next balance (their fair share grows now, not instance_ttl
    // later, and the slots it held do not stall meanwhile) and an offline rebuild need not
    // wait for the heartbeat to age. Its slot locks go with the session. A crash says
    // nothing; its heartbeat ages out.
    auto& d = *impl_;
    if (!d.session || !d.session->is_open()) return;
    try {
        d.appends.reset();  // before the connection it is registered with
        pqxx::nontransaction tx{*d.session};
        tx.exec_params(
            "UPDATE ordo.projector_instances SET heartbeat_at = '-infinity' WHERE instance = $1",
            d.options.instance);
    } catch (const std::exception&) {
        // Gone with the connection: the heartbeat ages out as after a crash.
    }
}

bool SlotLeases::connected() const {
    return impl_->session && impl_->appends && impl_->session->is_open();
}

void SlotLeases::connect(std::vector<Slot>& slots) {
    auto& d = *impl_;
    // The locks died with the old session: no slot is owned from here on, whatever fails next.
    for (auto& s : slots) s.owned = false;
    d.owned = 0;
    d.appends.reset();  // before the connection it is registered with
    d.session.reset();
    // Both or neither: a session that cannot LISTEN is not kept (connected() stays false and
    // the next round connects again).
    auto session = std::make_unique<platform::pg::Session>(d.options.database_url,
                                                           "ordo-" + d.options.group + "-session");
    d.appends =
        std::make_unique<eventstore::AppendSubscription>(*session, [this] { appended = true; });
    d.session = std::move(session);
}

void SlotLeases::drop_if_broken() {
    auto& d = *impl_;
    if (d.session && !d.session->is_open()) {
        d.appends.reset();  // before the connection it is registered with
        d.session.reset();
    }
}

void SlotLeases::balance(std::vector<Slot>& slots) {
    auto& d = *impl_;
    pqxx::nontransaction tx{*d.session};
    auto live = tx.exec_params1(
                      "WITH beat AS (INSERT INTO ordo.projector_instances (instance, "
                      "heartbeat_at, runtime_group) VALUES ($1, now(), $3) ON CONFLICT "
                      "(instance) DO UPDATE SET heartbeat_at = now()) SELECT count(*) + 1 "
                      "FROM ordo.projector_instances WHERE heartbeat_at > now() - "
                      "make_interval(secs => $2) AND instance <> $1 AND runtime_group = $3",
                      d.options.instance, static_cast<double>(d.options.instance_ttl.count()),
                      d.options.group)[0]
                    .as<std::size_t>();
    std::vector<bool> owned;
    owned.reserve(slots.size());
    for (const auto& s : slots) owned.push_back(s.owned);
    // A slot is marked owned the moment its lock is taken, so that a failure later in the
    // balance leaves no lock held on the session that the slots do not show.
    auto moves =
        rebalance(owned, fair_share(slots.size(), live),
                  search_start(d.options.instance, slots.size()), [&](std::size_t i) {
                      auto& s = slots[i];
                      s.owned = tx.exec_params1("SELECT pg_try_advisory_lock($1, $2)",
                                                slot_lock_key(s.projection->name()), s.partition)[0]
                                    .as<bool>();
                      // Newly owned: not known to be caught up, and its letters looked at
                      // first (the owner before may have parked or settled some).
                      if (s.owned) {
                          s.idle = false;
                          s.settle_pending = true;
                      }
                      return s.owned;
                  });
    for (auto i : moves.released) {
        auto& s = slots[i];
        tx.exec_params("SELECT pg_advisory_unlock($1, $2)", slot_lock_key(s.projection->name()),
                       s.partition);
        s.owned = false;
    }
    d.owned = static_cast<std::size_t>(
        std::count_if(slots.begin(), slots.end(), [](const Slot& s) { return s.owned; }));
}

std::size_t SlotLeases::owned() const {
    return impl_->owned;
}

bool SlotLeases::wait_for_events(const std::atomic<bool>& stop,
                                 std::chrono::steady_clock::time_point until) {
    auto& d = *impl_;
    // A ring that came before `woken` was last cleared is stale: left in the eventfd, it
    // would make every poll below return at once.
    d.drain_bell();
    const auto now = std::chrono::steady_clock::now();
    const auto deadline = std::min(d.poll.at_most(now + d.horizon_wait.next(d.hidden)), until);
    for (auto at = now; !stop && !woken && !appended && at < deadline;
         at = std::chrono::steady_clock::now()) {
        d.appends->await(std::min<std::chrono::microseconds>(
                             std::chrono::milliseconds(10),
                             std::chrono::duration_cast<std::chrono::microseconds>(deadline - at)),
                         d.bell);
    }
    d.drain_bell();
    return d.poll.passed(std::chrono::steady_clock::now());
}

void SlotLeases::probe_horizon() {
    auto& d = *impl_;
    // Where the events are: the shards over a sharded store (this database holds none of
    // them), else this database.
    if (d.options.hidden_elsewhere) {
        d.hidden = d.options.hidden_elsewhere();
    } else {
        pqxx::nontransaction tx{*d.session};
        d.hidden = eventstore::EventStore::hidden_for(tx).has_value();
    }
}

void SlotLeases::ring() {
    const std::uint64_t one = 1;
    // Nonblocking: a full counter means a wake is pending already.
    [[maybe_unused]] auto written = ::write(impl_->bell, &one, sizeof one);
}

}  // namespace ordo::projections
