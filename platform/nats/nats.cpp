// The reconnecting NATS connection on cnats: reconnects logged and counted from cnats'
// callbacks, and a close that waits for the last callback before freeing what they use.
#include "platform/nats/nats.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>

#include <nats/nats.h>
#include <nlohmann/json.hpp>

#include "platform/core/metrics.hpp"
#include "platform/nats/nats_options.hpp"

namespace ordo::platform::nats {

namespace {
// What the callbacks see: the logger, and whether we are closing on purpose.
struct CallbackState {
    Logger log;
    std::atomic<bool> closing{false};
    metrics::Counter* reconnects = nullptr;
    // cnats runs the callbacks on a thread of its own and does not wait for them when a
    // connection is destroyed: the state must outlive the last one, the closed callback.
    std::mutex mutex;
    std::condition_variable closed_cv;
    bool closed = false;
};
}  // namespace

struct Connection::Impl {
    explicit Impl(Logger l) : state{std::move(l)} {}
    CallbackState state;
    natsOptions* options = nullptr;
    natsConnection* conn = nullptr;
};

namespace {
void on_disconnected(natsConnection*, void* closure) {
    auto* state = static_cast<CallbackState*>(closure);
    if (!state->closing) state->log.warn("NATS disconnected; reconnecting");
}
void on_connected(natsConnection*, void* closure) {
    static_cast<CallbackState*>(closure)->log.info("NATS connected");
}
void on_closed(natsConnection*, void* closure) {
    auto* state = static_cast<CallbackState*>(closure);
    {
        std::lock_guard lock{state->mutex};
        state->closed = true;
    }
    state->closed_cv.notify_all();
}
void on_reconnected(natsConnection*, void* closure) {
    auto* state = static_cast<CallbackState*>(closure);
    if (state->reconnects) state->reconnects->inc();
    state->log.info("NATS reconnected");
}
}  // namespace

Connection::Connection(const ClientSettings& settings, Logger log, metrics::Registry* metrics)
    : impl_{std::make_unique<Impl>(std::move(log))} {
    if (metrics) {
        impl_->state.reconnects = &metrics->counter(
            "ordo_nats_reconnects_total", "Times a NATS connection was re-established after a loss",
            {{"connection", "nats"}});
    }
    natsOptions_Create(&impl_->options);
    try {
        apply(impl_->options, settings);
    } catch (...) {
        natsOptions_Destroy(impl_->options);
        throw;
    }
    natsOptions_SetMaxReconnect(impl_->options, -1);
    natsOptions_SetReconnectWait(impl_->options, 250);
    // With a callback, a first connection that fails is retried in the background instead
    // of blocking here until NATS answers (cnats blocks when the callback is null).
    natsOptions_SetRetryOnFailedConnect(impl_->options, true, on_connected, &impl_->state);
    natsOptions_SetDisconnectedCB(impl_->options, on_disconnected, &impl_->state);
    natsOptions_SetReconnectedCB(impl_->options, on_reconnected, &impl_->state);
    natsOptions_SetClosedCB(impl_->options, on_closed, &impl_->state);
    auto status = natsConnection_Connect(&impl_->conn, impl_->options);
    if (status != NATS_OK && status != NATS_NOT_YET_CONNECTED) {
        impl_->state.log.warn("NATS connection failed", {{"url", redacted(settings.url)},
                                                         {"error", natsStatus_GetText(status)}});
    }
}

Connection::~Connection() {
    impl_->state.closing = true;
    if (impl_->conn) {
        // Close, and wait for the closed callback (cnats calls it after every other one)
        // before the state the callbacks use goes away.
        natsConnection_Close(impl_->conn);
        std::unique_lock lock{impl_->state.mutex};
        impl_->state.closed_cv.wait_for(lock, std::chrono::seconds(5),
                                        [&] { return impl_->state.closed; });
        lock.unlock();
        natsConnection_Destroy(impl_->conn);
    }
    if (impl_->options) natsOptions_Destroy(impl_->options);
}

bool Connection::connected() const {
    return impl_->conn && natsConnection_Status(impl_->conn) == NATS_CONN_STATUS_CONNECTED;
}

}  // namespace ordo::platform::nats
