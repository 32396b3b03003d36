#include "eventstore/append_notifier.hpp"

#include <memory>

#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

namespace ordo::eventstore {

AppendNotifier::AppendNotifier(std::string url, platform::Logger log)
    : url_{std::move(url)}, log_{std::move(log)}, thread_{[this] { run(); }} {}

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
    std::unique_ptr<pqxx::connection> conn;
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
                conn = std::make_unique<pqxx::connection>(url_);
                pqxx::nontransaction setup{*conn};
                setup.exec("SET synchronous_commit = off");
            }
            pqxx::nontransaction tx{*conn};
            tx.exec(std::string{"NOTIFY "} + kChannel);
            backoff = std::chrono::milliseconds(100);
        } catch (const std::exception& e) {
            conn.reset();
            log_.warn("could not send the append notification; subscribers fall back to polling",
                      {{"error", e.what()}});
            std::unique_lock lock{mutex_};
            wake_.wait_for(lock, backoff, [&] { return stopping_; });
            backoff = std::min(backoff * 2, std::chrono::milliseconds(5000));
            pending_ = true;
        }
    }
}

}  // namespace ordo::eventstore
