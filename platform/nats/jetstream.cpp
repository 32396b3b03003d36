// The JetStream client on cnats: streams created or updated, windowed batch publishing with
// per-message acks, ordered subscriptions, and the one reading of cnats status codes.
#include "platform/nats/jetstream.hpp"

#include <algorithm>
#include <atomic>
#include <cctype>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

#include <nats/nats.h>
#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/metrics.hpp"
#include "platform/nats/nats_options.hpp"
#include "platform/nats/nats_status.hpp"

namespace ordo::platform::jetstream {
namespace {

using nats_status::describe;
using nats_status::is_transient;

using namespace std::chrono_literals;

constexpr std::int64_t kApiWaitMs = 5000;

// Translates a failed cnats call into the project's error types.
[[noreturn]] void fail(const std::string& what, natsStatus status, jsErrCode code = jsErrCode{}) {
    auto message = what + ": " + describe(status);
    if (code != 0) message += " (JetStream error " + std::to_string(static_cast<int>(code)) + ")";
    if (is_transient(status)) throw Unavailable(message);
    throw std::runtime_error(message);
}

std::string lower(std::string text) {
    std::transform(text.begin(), text.end(), text.begin(),
                   [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
    return text;
}

// `stored_time`: also parse the delivery's metadata for the time the stream stored it (a
// string parse and allocations per message, so only for those who asked).
Message to_message(natsMsg* msg, bool stored_time) {
    Message out;
    out.subject = natsMsg_GetSubject(msg);
    if (int length = natsMsg_GetDataLength(msg); length > 0) {
        out.data.assign(natsMsg_GetData(msg), static_cast<std::size_t>(length));
    }
    const char** keys = nullptr;
    int count = 0;
    if (natsMsgHeader_Keys(msg, &keys, &count) == NATS_OK) {
        for (int i = 0; i < count; ++i) {
            const char* value = nullptr;
            if (natsMsgHeader_Get(msg, keys[i], &value) == NATS_OK && value) {
                out.headers[lower(keys[i])] = value;
            }
        }
        std::free(static_cast<void*>(keys));
    }
    if (jsMsgMetaData* meta = nullptr; stored_time && natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        out.stored = std::chrono::system_clock::time_point{
            std::chrono::duration_cast<std::chrono::system_clock::duration>(
                std::chrono::nanoseconds{meta->Timestamp})};
        jsMsgMetaData_Destroy(meta);
    }
    return out;
}

// The caller owns the returned message; nullptr when cnats refused to build it.
natsMsg* to_nats(const std::string& subject, const Message& message) {
    natsMsg* msg = nullptr;
    if (natsMsg_Create(&msg, subject.c_str(), nullptr, message.data.data(),
                       static_cast<int>(message.data.size())) != NATS_OK) {
        return nullptr;
    }
    for (const auto& [key, value] : message.headers) {
        if (value.empty()) continue;  // see Message: cnats cannot read empty values back
        if (natsMsgHeader_Set(msg, key.c_str(), value.c_str()) != NATS_OK) {
            natsMsg_Destroy(msg);
            return nullptr;
        }
    }
    return msg;
}

// Acknowledgement bookkeeping of the batch being published.
struct Batch {
    std::unordered_map<natsMsg*, std::size_t> index;  // messages cnats owns now
    std::vector<char> acked;
    std::size_t in_flight = 0;
    // The publisher, once the window is full, waits until in_flight is down to `refill`
    // (about half the window) and then sends that many at once: an acknowledgement wakes it
    // only when in_flight reaches `refill` or 0, or on a failure, not once per message,
    // which cost a thread switch per message.
    std::size_t refill = 0;
    bool failed = false;
    std::string error;
};

}  // namespace

struct Client::Impl {
    explicit Impl(Logger l) : log{std::move(l)} {}
    Logger log;
    metrics::Counter* reconnects = nullptr;
    std::atomic<bool> closing{false};
    natsOptions* options = nullptr;
    natsConnection* conn = nullptr;
    jsCtx* js = nullptr;

    std::mutex publish_mutex;  // one batch at a time
    std::mutex mutex;          // guards `batch` and `closed`
    std::condition_variable progress;
    Batch* batch = nullptr;
    bool closed = false;  // cnats's last connection callback has run

    static void on_disconnected(natsConnection*, void* closure) {
        auto* self = static_cast<Impl*>(closure);
        if (!self->closing) self->log.warn("NATS disconnected; reconnecting");
    }
    static void on_closed(natsConnection*, void* closure) {
        auto* self = static_cast<Impl*>(closure);
        std::lock_guard lock{self->mutex};
        self->closed = true;
        self->progress.notify_all();
    }
    static void on_connected(natsConnection*, void* closure) {
        static_cast<Impl*>(closure)->log.info("NATS connected");
    }
    static void on_reconnected(natsConnection*, void* closure) {
        auto* self = static_cast<Impl*>(closure);
        if (self->reconnects) self->reconnects->inc();
        self->log.info("NATS reconnected");
    }
    // Runs on cnats's reply-subscription thread, for acks, errors and MaxWait timeouts alike.
    // With an AckHandler, the message is ours to destroy.
    static void on_ack(jsCtx*, natsMsg* msg, jsPubAck* ack, jsPubAckErr* error, void* closure) {
        auto* self = static_cast<Impl*>(closure);
        {
            std::lock_guard lock{self->mutex};
            if (auto* batch = self->batch) {
                if (auto it = batch->index.find(msg); it != batch->index.end()) {
                    if (ack) {
                        batch->acked[it->second] = 1;
                    } else {
                        batch->failed = true;
                        if (batch->error.empty() && error) {
                            batch->error = natsStatus_GetText(error->Err);
                            if (error->ErrText) batch->error += std::string{": "} + error->ErrText;
                        }
                    }
                    batch->index.erase(it);
                    --batch->in_flight;
                    if (!ack || batch->in_flight == batch->refill || batch->in_flight == 0) {
                        self->progress.notify_all();
                    }
                }
            }
        }
        natsMsg_Destroy(msg);
    }
};

Client::Client(const nats::ClientSettings& settings, Logger log, metrics::Registry* metrics)
    : impl_{std::make_unique<Impl>(std::move(log))} {
    if (metrics) {
        impl_->reconnects = &metrics->counter(
            "ordo_nats_reconnects_total", "Times a NATS connection was re-established after a loss",
            {{"connection", "jetstream"}});
    }
    natsOptions_Create(&impl_->options);
    try {
        nats::apply(impl_->options, settings);
    } catch (...) {
        natsOptions_Destroy(impl_->options);
        throw;
    }
    natsOptions_SetMaxReconnect(impl_->options, -1);
    natsOptions_SetReconnectWait(impl_->options, 250);
    // With a connected callback, Connect returns at once when the server is away and keeps
    // trying in the background; without one it would block until the server comes.
    natsOptions_SetRetryOnFailedConnect(impl_->options, true, &Impl::on_connected, impl_.get());
    natsOptions_SetDisconnectedCB(impl_->options, &Impl::on_disconnected, impl_.get());
    natsOptions_SetReconnectedCB(impl_->options, &Impl::on_reconnected, impl_.get());
    natsOptions_SetClosedCB(impl_->options, &Impl::on_closed, impl_.get());
    auto status = natsConnection_Connect(&impl_->conn, impl_->options);
    if (status != NATS_OK && status != NATS_NOT_YET_CONNECTED) {
        impl_->log.warn("NATS connection failed",
                        {{"url", nats::redacted(settings.url)}, {"error", describe(status)}});
    }
    if (impl_->conn) {
        jsOptions js_options;
        jsOptions_Init(&js_options);
        js_options.Wait = kApiWaitMs;
        // The window is enforced by publish_batch; cnats's own limit only as a backstop.
        js_options.PublishAsync.MaxPending = 1 << 16;
        js_options.PublishAsync.AckHandler = &Impl::on_ack;
        js_options.PublishAsync.AckHandlerClosure = impl_.get();
        status = natsConnection_JetStream(&impl_->js, impl_->conn, &js_options);
        if (status != NATS_OK) {
            natsConnection_Destroy(impl_->conn);
            natsOptions_Destroy(impl_->options);
            fail("cannot create a JetStream context", status);
        }
    }
}

Client::~Client() {
    impl_->closing = true;
    if (impl_->js) jsCtx_Destroy(impl_->js);
    if (impl_->conn) {
        // cnats runs connection callbacks on a thread of its own, possibly after Close
        // returns; the closed callback is the last of them, so wait for it before freeing
        // what they point to.
        natsConnection_Close(impl_->conn);
        {
            std::unique_lock lock{impl_->mutex};
            impl_->progress.wait_for(lock, 5s, [&] { return impl_->closed; });
        }
        natsConnection_Destroy(impl_->conn);
    }
    if (impl_->options) natsOptions_Destroy(impl_->options);
}

bool Client::connected() const {
    return impl_->conn && natsConnection_Status(impl_->conn) == NATS_CONN_STATUS_CONNECTED;
}

void Client::ensure_stream(const StreamConfig& config) {
    if (!impl_->js) throw Unavailable("NATS is not connected");
    std::vector<const char*> subjects;
    for (const auto& s : config.subjects) subjects.push_back(s.c_str());
    jsStreamConfig sc;
    jsStreamConfig_Init(&sc);
    sc.Name = config.name.c_str();
    sc.Subjects = subjects.data();
    sc.SubjectsLen = static_cast<int>(subjects.size());
    sc.Storage = js_FileStorage;
    sc.Retention = js_LimitsPolicy;
    sc.MaxAge = std::chrono::duration_cast<std::chrono::nanoseconds>(config.max_age).count();
    sc.Duplicates =
        std::chrono::duration_cast<std::chrono::nanoseconds>(config.duplicate_window).count();
    sc.Replicas = config.replicas;

    jsStreamInfo* info = nullptr;
    jsErrCode code{};
    auto status = js_GetStreamInfo(&info, impl_->js, config.name.c_str(), nullptr, &code);
    // Never fewer copies than the stream has: a process started without the replicas setting
    // (by hand, or an older one during a rollout) must not take a cluster's copies away.
    if (status == NATS_OK && info && info->Config && info->Config->Replicas > sc.Replicas) {
        sc.Replicas = info->Config->Replicas;
    }
    jsStreamInfo_Destroy(info);
    info = nullptr;
    if (status == NATS_NOT_FOUND || code == JSStreamNotFoundErr) {
        code = jsErrCode{};
        status = js_AddStream(&info, impl_->js, &sc, nullptr, &code);
        jsStreamInfo_Destroy(info);
        info = nullptr;
        if (status == NATS_OK) {
            impl_->log.info("created JetStream stream", {{"stream", config.name}});
            return;
        }
        if (code != JSStreamNameExistErr) fail("cannot create stream " + config.name, status, code);
        // Another process created it meanwhile: bring it to our config below.
    } else if (status != NATS_OK) {
        fail("cannot read stream " + config.name, status, code);
    }
    code = jsErrCode{};
    status = js_UpdateStream(&info, impl_->js, &sc, nullptr, &code);
    jsStreamInfo_Destroy(info);
    if (status != NATS_OK) fail("cannot update stream " + config.name, status, code);
}

std::size_t Client::publish_batch(const std::vector<std::pair<std::string, Message>>& items,
                                  std::size_t window, std::chrono::milliseconds timeout) {
    if (items.empty()) return 0;
    if (!impl_->js) return 0;
    window = std::max<std::size_t>(window, 1);
    std::lock_guard serial{impl_->publish_mutex};

    Batch batch;
    batch.acked.assign(items.size(), 0);
    batch.refill = window / 2;
    {
        std::lock_guard lock{impl_->mutex};
        impl_->batch = &batch;
    }
    jsPubOptions options;
    jsPubOptions_Init(&options);
    options.MaxWait = timeout.count();  // cnats reports a timeout through on_ack
    // cnats times out every message after MaxWait; this bound only guards against its timer
    // never firing.
    const auto wait_bound = timeout + 1s;

    std::unique_lock lock{impl_->mutex};
    for (std::size_t i = 0; i < items.size(); ++i) {
        if (batch.in_flight >= window) {
            bool room = impl_->progress.wait_for(
                lock, wait_bound, [&] { return batch.failed || batch.in_flight <= batch.refill; });
            if (!room) break;
        }
        if (batch.failed) break;
        natsMsg* msg = to_nats(items[i].first, items[i].second);
        if (!msg) {
            batch.failed = true;
            batch.error = "cannot build message for " + items[i].first;
            break;
        }
        batch.index.emplace(msg, i);
        ++batch.in_flight;
        lock.unlock();
        natsMsg* handle = msg;
        auto status = js_PublishMsgAsync(impl_->js, &handle, &options);
        lock.lock();
        if (status != NATS_OK) {
            // cnats gave the message back without an ack callback: it is ours again.
            if (batch.index.erase(msg) > 0) --batch.in_flight;
            natsMsg_Destroy(handle);
            batch.failed = true;
            if (batch.error.empty()) batch.error = describe(status);
            break;
        }
    }
    impl_->progress.wait_for(lock, wait_bound, [&] { return batch.in_flight == 0; });
    const bool abandoned = batch.in_flight > 0;
    impl_->batch = nullptr;
    lock.unlock();
    if (abandoned) {
        // Take back what cnats still holds so that late acks find nothing to report.
        natsMsgList pending{};
        if (js_PublishAsyncGetPendingList(&pending, impl_->js) == NATS_OK) {
            natsMsgList_Destroy(&pending);
        }
    }

    std::size_t prefix = 0;
    while (prefix < items.size() && batch.acked[prefix]) ++prefix;
    if (prefix < items.size()) {
        impl_->log.warn(
            "JetStream publish incomplete",
            {{"acknowledged", prefix},
             {"batch", items.size()},
             {"error", batch.error.empty() ? "no acknowledgement in time" : batch.error}});
    }
    return prefix;
}

struct Client::Subscription::Impl {
    // What the cnats callbacks see. It outlives the natsSubscription: the completion
    // callback releases it, after the last message callback has returned.
    struct Shared {
        Shared(std::function<void(Message)> f, Logger l, bool stored)
            : on_message{std::move(f)}, log{std::move(l)}, stored_time{stored} {}
        std::function<void(Message)> on_message;
        Logger log;
        bool stored_time;
        std::mutex mutex;
        std::condition_variable done_cv;
        bool done = false;
    };
    natsSubscription* sub = nullptr;
    std::shared_ptr<Shared> shared;

    static void on_msg(natsConnection*, natsSubscription*, natsMsg* msg, void* closure) {
        auto& shared = **static_cast<std::shared_ptr<Shared>*>(closure);
        try {
            shared.on_message(to_message(msg, shared.stored_time));
        } catch (const std::exception& e) {
            shared.log.error("JetStream message handler failed", {{"error", e.what()}});
        }
        natsMsg_Destroy(msg);
    }
    static void on_complete(void* closure) {
        auto* holder = static_cast<std::shared_ptr<Shared>*>(closure);
        auto shared = *holder;
        delete holder;
        {
            std::lock_guard lock{shared->mutex};
            shared->done = true;
        }
        shared->done_cv.notify_all();
    }
};

Client::Subscription::Subscription(std::unique_ptr<Impl> impl) : impl_{std::move(impl)} {}

Client::Subscription::~Subscription() {
    if (!impl_->sub) return;
    natsSubscription_Unsubscribe(impl_->sub);
    {
        std::unique_lock lock{impl_->shared->mutex};
        if (!impl_->shared->done_cv.wait_for(lock, 10s, [&] { return impl_->shared->done; })) {
            impl_->shared->log.warn("JetStream subscription did not close in time");
        }
    }
    natsSubscription_Destroy(impl_->sub);
}

std::unique_ptr<Client::Subscription> Client::subscribe_ordered(
    const std::string& stream, const std::string& filter,
    std::optional<std::chrono::system_clock::time_point> start_time,
    std::function<void(Message)> on_message, bool stored_time) {
    if (!impl_->js) throw Unavailable("NATS is not connected");
    auto impl = std::make_unique<Subscription::Impl>();
    impl->shared = std::make_shared<Subscription::Impl::Shared>(std::move(on_message), impl_->log,
                                                                stored_time);

    jsSubOptions options;
    jsSubOptions_Init(&options);
    options.Stream = stream.c_str();
    options.Ordered = true;
    if (start_time) {
        options.Config.DeliverPolicy = js_DeliverByStartTime;
        options.Config.OptStartTime =
            std::chrono::duration_cast<std::chrono::nanoseconds>(start_time->time_since_epoch())
                .count();
    } else {
        options.Config.DeliverPolicy = js_DeliverAll;
    }
    auto* holder = new std::shared_ptr<Subscription::Impl::Shared>(impl->shared);
    jsErrCode code{};
    auto status = js_Subscribe(&impl->sub, impl_->js, filter.c_str(), &Subscription::Impl::on_msg,
                               holder, nullptr, &options, &code);
    if (status != NATS_OK) {
        delete holder;
        fail("cannot subscribe to " + filter + " of " + stream, status, code);
    }
    natsSubscription_SetOnCompleteCB(impl->sub, &Subscription::Impl::on_complete, holder);
    return std::unique_ptr<Subscription>(new Subscription(std::move(impl)));
}

void Client::purge_stream(const std::string& stream) {
    if (!impl_->js) throw Unavailable("NATS is not connected");
    jsErrCode code{};
    if (auto status = js_PurgeStream(impl_->js, stream.c_str(), nullptr, &code);
        status != NATS_OK) {
        fail("cannot purge stream " + stream, status, code);
    }
}

std::uint64_t Client::message_count(const std::string& stream) {
    if (!impl_->js) throw Unavailable("NATS is not connected");
    jsStreamInfo* info = nullptr;
    jsErrCode code{};
    auto status = js_GetStreamInfo(&info, impl_->js, stream.c_str(), nullptr, &code);
    if (status != NATS_OK) fail("cannot read stream " + stream, status, code);
    auto count = info->State.Msgs;
    jsStreamInfo_Destroy(info);
    return count;
}

void Client::delete_stream(const std::string& stream) {
    if (!impl_->js) throw Unavailable("NATS is not connected");
    jsErrCode code{};
    auto status = js_DeleteStream(impl_->js, stream.c_str(), nullptr, &code);
    if (status == NATS_OK || status == NATS_NOT_FOUND || code == JSStreamNotFoundErr) return;
    fail("cannot delete stream " + stream, status, code);
}

}  // namespace ordo::platform::jetstream

namespace ordo::platform::nats_status {

std::string describe(natsStatus status) {
    std::string text = natsStatus_GetText(status);
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    if (detail && *detail && last == status && text != detail) text += ": " + std::string{detail};
    return text;
}

bool is_transient(natsStatus status) {
    switch (status) {
        case NATS_TIMEOUT:
        case NATS_NO_RESPONDERS:
        case NATS_CONNECTION_CLOSED:
        case NATS_CONNECTION_DISCONNECTED:
        case NATS_NOT_YET_CONNECTED:
        case NATS_IO_ERROR:
        case NATS_STALE_CONNECTION:
        case NATS_NO_SERVER:
            return true;
        default:
            return false;
    }
}

}  // namespace ordo::platform::nats_status
