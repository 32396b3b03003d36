// Append notifications over PostgreSQL NOTIFY/LISTEN: the coalescing sender, the subscription on
// an owner's connection, and the listener with a connection of its own.

#include "eventstore/append_notifier.hpp"

#include <cerrno>
#include <memory>
#include <system_error>

#include <poll.h>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "platform/pg/pg.hpp"
#include "platform/pg/session.hpp"

namespace ordo::eventstore {

AppendNotifier::AppendNotifier(std::string url, platform::Logger log, std::string channel)
    : url_{std::move(url)}, log_{std::move(log)}, channel_{std::move(channel)}, thread_{[this] {
          run();
      }} {}

AppendNotifier::~AppendNotifier() {
    {
        std::lock_guard lock{mutex_};
        stopping_ = true;
    }
    wake_.notify_one();
    thread_.join();
}

void AppendNotifier::signal() {
    {
        std::lock_guard lock{mutex_};
        if (pending_) return;
        pending_ = true;
    }
    wake_.notify_one();
}

void AppendNotifier::run() {
    std::unique_ptr<platform::pg::Session> conn;  // synchronous_commit off is its own
    auto backoff = std::chrono::milliseconds(100);
    for (;;) {
        {
            std::unique_lock lock{mutex_};
            wake_.wait(lock, [&] { return pending_ || stopping_; });
            if (stopping_) return;
            pending_ = false;
        }
        try {
            if (!conn || !conn->is_open()) {
                conn = std::make_unique<platform::pg::Session>(url_, "ordo-notifier");
                pqxx::nontransaction setup{*conn};
                setup.exec("SET synchronous_commit = off");
            }
            pqxx::nontransaction tx{*conn};
            tx.exec("NOTIFY " + tx.quote_name(channel_));
            backoff = std::chrono::milliseconds(100);
        } catch (const std::exception& e) {
            conn.reset();
            log_.warn("could not send a notification; listeners fall back to polling",
                      {{"channel", channel_}, {"error", e.what()}});
            std::unique_lock lock{mutex_};
            wake_.wait_for(lock, backoff, [&] { return stopping_; });
            backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            pending_ = true;
        }
    }
}

AppendListener::AppendListener(std::string url, platform::Logger log, std::string channel,
                               std::function<void()> on_notify)
    : url_{std::move(url)},
      log_{std::move(log)},
      channel_{std::move(channel)},
      on_notify_{std::move(on_notify)},
      thread_{[this] { run(); }} {}

AppendListener::~AppendListener() {
    stopping_ = true;
    thread_.join();
}

std::uint64_t AppendListener::seen() const {
    std::lock_guard lock{mutex_};
    return count_;
}

void AppendListener::wait(std::uint64_t seen, std::chrono::milliseconds timeout) {
    std::unique_lock lock{mutex_};
    announced_.wait_for(lock, timeout, [&] { return count_ != seen; });
}

struct AppendSubscription::Receiver final : pqxx::notification_receiver {
    Receiver(pqxx::connection_base& c, std::function<void()> f, const std::string& channel)
        : notification_receiver{c, channel}, on_append{std::move(f)} {}
    void operator()(const std::string&, int) override { on_append(); }
    std::function<void()> on_append;
};

AppendSubscription::AppendSubscription(pqxx::connection_base& connection,
                                       std::function<void()> on_append, const std::string& channel)
    : connection_{connection},
      receiver_{std::make_unique<Receiver>(connection, std::move(on_append), channel)} {}

AppendSubscription::~AppendSubscription() = default;

void AppendSubscription::await(std::chrono::microseconds timeout, int bell) {
    const auto us = std::max<std::int64_t>(timeout.count(), 0);
    if (bell < 0) {
        connection_.await_notification(us / 1'000'000, us % 1'000'000);
        return;
    }
    if (connection_.get_notifs() > 0) return;  // some had arrived already
    const int socket = connection_.sock();
    if (socket < 0) throw pqxx::broken_connection{"the listening connection is closed"};
    pollfd both[] = {{socket, POLLIN, 0}, {bell, POLLIN, 0}};
    const auto ms = static_cast<int>((us + 999) / 1000);
    if (::poll(both, 2, ms) < 0 && errno != EINTR) {
        throw std::system_error(errno, std::generic_category(), "poll");
    }
    if (both[0].revents != 0) connection_.get_notifs();  // reads the socket; throws if broken
}

void AppendListener::run() {
    auto backoff = std::chrono::milliseconds(100);
    while (!stopping_) {
        try {
            platform::pg::Session conn{url_, "ordo-listener"};
            auto announce = [this] {
                {
                    std::lock_guard lock{mutex_};
                    ++count_;
                }
                announced_.notify_one();
                if (on_notify_) on_notify_();
            };
            AppendSubscription subscription{conn, announce, channel_};
            // Listening now: whatever was appended before (while connecting, or while the
            // server was away) was announced to no one, so it is announced once here.
            announce();
            backoff = std::chrono::milliseconds(100);
            // In slices, so that stopping is noticed.
            while (!stopping_) subscription.await(std::chrono::milliseconds(100));
        } catch (const std::exception& e) {
            log_.warn("cannot listen for notifications; polling meanwhile",
                      {{"channel", channel_}, {"error", e.what()}});
            for (auto waited = std::chrono::milliseconds(0); waited < backoff && !stopping_;
                 waited += std::chrono::milliseconds(20)) {
                std::this_thread::sleep_for(std::chrono::milliseconds(20));
            }
            backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
        }
    }
}

}  // namespace ordo::eventstore
