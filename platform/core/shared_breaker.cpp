// The shared breaker's decisions: the fleet's state adopted, the probe claimed by
// compare-and-set, openings and verdicts published; the local breaker alone while the store
// cannot be reached.
#include "platform/core/shared_breaker.hpp"

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"

namespace ordo::platform {

namespace {
constexpr std::chrono::seconds kRetryUnreachable{5};
}  // namespace

std::string breaker_key(const std::string& name) {
    std::string key = name;
    for (char& c : key) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '=' || c == '.' || c == '/';
        if (!ok) c = '_';
    }
    return key.empty() ? "_" : key;
}

std::string SharedBreakerState::to_json() const {
    return nlohmann::json{
        {"state", to_string(state)}, {"open_until_ms", open_until_ms},   {"level", level},
        {"prober", prober},          {"probe_until_ms", probe_until_ms}, {"by", by}}
        .dump();
}

SharedBreakerState SharedBreakerState::from_json(const std::string& text) {
    try {
        auto j = nlohmann::json::parse(text);
        SharedBreakerState s;
        s.state = parse_breaker_state(j.at("state").get<std::string>());
        s.open_until_ms = j.value("open_until_ms", std::int64_t{0});
        s.level = j.value("level", 0);
        s.prober = j.value("prober", std::string{});
        s.probe_until_ms = j.value("probe_until_ms", std::int64_t{0});
        s.by = j.value("by", std::string{});
        return s;
    } catch (const InvalidInput&) {
        throw;
    } catch (const std::exception& e) {
        throw InvalidInput(std::string{"not a shared breaker state: "} + e.what());
    }
}

SharedBreaker::SharedBreaker(CircuitBreaker& local, BreakerStore* store, std::string key,
                             std::string instance, const Clock& clock, Logger log,
                             std::chrono::milliseconds refresh, std::function<void()> on_probe)
    : local_{local},
      store_{store},
      key_{std::move(key)},
      instance_{std::move(instance)},
      clock_{clock},
      log_{std::move(log)},
      refresh_{refresh},
      on_probe_{std::move(on_probe)} {}

bool SharedBreaker::degraded() const {
    std::lock_guard lock{mutex_};
    return degraded_;
}

std::int64_t SharedBreaker::now_ms() const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(clock_.now().time_since_epoch())
        .count();
}

std::chrono::steady_clock::time_point SharedBreaker::steady_at(std::int64_t at_ms) const {
    return clock_.steady_now() + std::chrono::milliseconds{at_ms - now_ms()};
}

std::int64_t SharedBreaker::wall_ms(std::chrono::steady_clock::time_point at) const {
    return now_ms() +
           std::chrono::duration_cast<std::chrono::milliseconds>(at - clock_.steady_now()).count();
}

std::optional<BreakerStore::Entry> SharedBreaker::read(bool fresh) {
    const auto now = clock_.steady_now();
    if (!fresh && !degraded_ && cached_ && now - read_at_ < refresh_) return cached_;
    // While the store is away, look again only now and then: each look may wait for a
    // timeout, and the local breaker decides meanwhile.
    if (!fresh && degraded_ && now - read_at_ < kRetryUnreachable) return std::nullopt;
    try {
        auto entry = store_->get(key_);
        if (!entry) {
            SharedBreakerState closed;
            closed.by = instance_;
            if (auto revision = store_->create(key_, closed)) {
                entry = BreakerStore::Entry{closed, *revision};
            } else {
                entry = store_->get(key_);  // another instance created it first
            }
        }
        if (!entry) throw Unavailable("breaker state vanished while being created");
        if (degraded_) log_.info("shared breaker state reachable again", {{"breaker", key_}});
        degraded_ = false;
        cached_ = entry;
        read_at_ = now;
        return cached_;
    } catch (const std::exception& e) {
        if (!degraded_) {
            log_.warn("shared breaker state unreachable; this instance decides alone",
                      {{"breaker", key_}, {"error", e.what()}});
        }
        degraded_ = true;
        cached_.reset();
        read_at_ = now;
        return std::nullopt;
    }
}

void SharedBreaker::adopt(const SharedBreakerState& shared, const std::string& reason) {
    local_.adopt(shared.state, steady_at(shared.open_until_ms), shared.level, reason);
}

bool SharedBreaker::claim_probe(const BreakerStore::Entry& entry) {
    SharedBreakerState claim = entry.value;
    claim.state = BreakerState::half_open;
    claim.prober = instance_;
    claim.probe_until_ms = now_ms() + local_.options().probe_timeout.count();
    claim.by = instance_;
    try {
        if (auto revision = store_->update(key_, claim, entry.revision)) {
            cached_ = BreakerStore::Entry{claim, *revision};
            read_at_ = clock_.steady_now();
            local_.adopt(BreakerState::half_open, {}, claim.level, "claimed the probe");
            return true;
        }
        // Another instance claimed it: take its state.
        if (auto now = read(true)) adopt(now->value, "probe claimed by " + now->value.prober);
        return false;
    } catch (const std::exception&) {
        read(true);  // marks the store unreachable
        return false;
    }
}

void SharedBreaker::publish(BreakerState state) {
    if (!cached_) return;  // unreachable: the local breaker decides alone
    SharedBreakerState value;
    value.state = state;
    value.level = local_.level();
    value.open_until_ms = state == BreakerState::open ? wall_ms(local_.open_until()) : 0;
    if (state == BreakerState::half_open) {
        value.prober = instance_;
        value.probe_until_ms = now_ms() + local_.options().probe_timeout.count();
    }
    value.by = instance_;
    try {
        if (auto revision = store_->update(key_, value, cached_->revision)) {
            cached_ = BreakerStore::Entry{value, *revision};
            read_at_ = clock_.steady_now();
            return;
        }
        // The fleet moved on meanwhile; its newer decision wins.
        if (auto now = read(true)) adopt(now->value, "shared state changed by " + now->value.by);
    } catch (const std::exception&) {
        read(true);
    }
}

bool SharedBreaker::allow() {
    std::lock_guard lock{mutex_};
    bool allowed = decide();
    if (allowed && on_probe_ && local_.state() == BreakerState::half_open) on_probe_();
    return allowed;
}

bool SharedBreaker::decide() {
    if (!store_) return local_.allow();
    const auto before = local_.state();
    auto entry = read(false);
    if (!entry) return local_.allow();
    const auto& shared = entry->value;
    const auto now = now_ms();
    bool allowed = false;
    switch (shared.state) {
        case BreakerState::closed:
            if (before != BreakerState::closed && shared.by == instance_) {
                // Our own opening did not reach the store (it was unreachable): write it now.
                publish(before);
                return false;
            }
            if (before != BreakerState::closed) adopt(shared, "closed by " + shared.by);
            allowed = local_.allow();
            break;
        case BreakerState::open:
            if (now < shared.open_until_ms) {
                adopt(shared, "opened by " + shared.by);
                return false;
            }
            if (!claim_probe(*entry)) return false;
            allowed = local_.allow();
            break;
        case BreakerState::half_open:
            if (shared.prober == instance_) {
                // Our probe outlived its timeout and the local breaker reopened for longer:
                // the fleet learns of it, rather than this instance probing again at once.
                if (before == BreakerState::open) {
                    publish(before);
                    return false;
                }
                if (before != BreakerState::half_open) adopt(shared, "probe claimed earlier");
                allowed = local_.allow();
                break;
            }
            if (now < shared.probe_until_ms) {
                adopt(shared, "probe claimed by " + shared.prober);
                return false;
            }
            // The prober went quiet past its timeout: the probe is up for grabs again.
            if (!claim_probe(*entry)) return false;
            allowed = local_.allow();
            break;
    }
    publish_opening();
    return allowed;
}

BreakerState SharedBreaker::observe() {
    std::lock_guard lock{mutex_};
    if (store_) {
        if (auto entry = read(false)) {
            const auto& shared = entry->value;
            const bool ours = shared.by == instance_ || shared.prober == instance_;
            if (!ours && shared.state != local_.state()) adopt(shared, "seen from " + shared.by);
        }
    }
    return local_.state();
}

void SharedBreaker::record(CallOutcome outcome, std::chrono::nanoseconds elapsed) {
    std::lock_guard lock{mutex_};
    if (!store_) {
        local_.record(outcome, elapsed);
        return;
    }
    const auto before = local_.state();
    local_.record(outcome, elapsed);
    const auto after = local_.state();
    if (after != before) {
        publish(after);
        return;
    }
    // `before` has the local clock applied already: a probe that timed out reopened the
    // local breaker without a transition here, and a late outcome changes nothing.
    publish_opening();
}

void SharedBreaker::publish_opening() {
    if (!cached_ || cached_->value.state == BreakerState::open) return;
    if (local_.state() == BreakerState::open) publish(BreakerState::open);
}

}  // namespace ordo::platform
