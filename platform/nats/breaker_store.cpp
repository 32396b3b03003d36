// The key-value breaker store on cnats: the bucket opened or created on first use, and get,
// create and compare-and-set update, each bounded by the timeout; a lost race is no error.
#include "platform/nats/breaker_store.hpp"

#include <mutex>

#include <nats/nats.h>
#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/nats/nats_options.hpp"
#include "platform/nats/nats_status.hpp"

namespace ordo::platform {
namespace {

using nats_status::describe;
using nats_status::is_transient;

// A compare-and-set that lost: the server answers "wrong last sequence".
bool is_conflict(natsStatus status) {
    if (status != NATS_ERR) return false;
    natsStatus last = NATS_OK;
    const char* detail = nats_GetLastError(&last);
    return detail && std::string{detail}.find("wrong last sequence") != std::string::npos;
}

[[noreturn]] void fail(const std::string& what, natsStatus status) {
    auto message = what + ": " + describe(status);
    if (is_transient(status)) throw Unavailable(message);
    throw std::runtime_error(message);
}

}  // namespace

struct KvBreakerStore::Impl {
    explicit Impl(Logger l) : log{std::move(l)} {}
    Logger log;
    std::string bucket;
    std::chrono::milliseconds timeout{};
    int replicas = 1;
    natsOptions* options = nullptr;
    natsConnection* conn = nullptr;
    jsCtx* js = nullptr;
    std::mutex mutex;  // guards kv
    kvStore* kv = nullptr;

    // The bucket, opened (or created) on first use and after it could not be.
    kvStore* open() {
        if (kv) return kv;
        if (!conn || !js) throw Unavailable("NATS is not connected");
        auto status = js_KeyValue(&kv, js, bucket.c_str());
        if (status == NATS_OK) return kv;
        if (is_transient(status)) fail("opening bucket " + bucket, status);
        kvConfig config;
        kvConfig_Init(&config);
        config.Bucket = bucket.c_str();
        config.History = 1;
        config.Replicas = replicas;
        status = js_CreateKeyValue(&kv, js, &config);
        if (status != NATS_OK) {
            kv = nullptr;
            fail("creating bucket " + bucket, status);
        }
        return kv;
    }
};

KvBreakerStore::KvBreakerStore(const nats::ClientSettings& nats, std::string bucket, Logger log,
                               std::chrono::milliseconds timeout, int replicas)
    : impl_{std::make_unique<Impl>(std::move(log))} {
    impl_->bucket = std::move(bucket);
    impl_->timeout = timeout;
    impl_->replicas = replicas;
    natsOptions_Create(&impl_->options);
    try {
        nats::apply(impl_->options, nats);
    } catch (...) {
        natsOptions_Destroy(impl_->options);
        throw;
    }
    natsOptions_SetMaxReconnect(impl_->options, -1);
    natsOptions_SetReconnectWait(impl_->options, 250);
    natsOptions_SetTimeout(impl_->options, timeout.count());
    // Nothing is worth buffering while away: a breaker state is read fresh each time.
    natsOptions_SetReconnectBufSize(impl_->options, 0);
    natsOptions_SetRetryOnFailedConnect(impl_->options, true, nullptr, nullptr);
    auto status = natsConnection_Connect(&impl_->conn, impl_->options);
    if (status != NATS_OK && status != NATS_NOT_YET_CONNECTED) {
        impl_->log.warn("breaker store: cannot connect to NATS", {{"error", describe(status)}});
        natsConnection_Destroy(impl_->conn);
        impl_->conn = nullptr;
        return;
    }
    jsOptions js_options;
    jsOptions_Init(&js_options);
    js_options.Wait = timeout.count();
    if (natsConnection_JetStream(&impl_->js, impl_->conn, &js_options) != NATS_OK) {
        impl_->js = nullptr;
    }
}

KvBreakerStore::~KvBreakerStore() {
    if (impl_->kv) kvStore_Destroy(impl_->kv);
    if (impl_->js) jsCtx_Destroy(impl_->js);
    if (impl_->conn) {
        natsConnection_Close(impl_->conn);
        natsConnection_Destroy(impl_->conn);
    }
    if (impl_->options) natsOptions_Destroy(impl_->options);
}

std::optional<BreakerStore::Entry> KvBreakerStore::get(const std::string& key) {
    std::lock_guard lock{impl_->mutex};
    auto* kv = impl_->open();
    kvEntry* entry = nullptr;
    auto status = kvStore_Get(&entry, kv, key.c_str());
    if (status == NATS_NOT_FOUND) return std::nullopt;
    if (status != NATS_OK) fail("reading breaker " + key, status);
    std::string text{static_cast<const char*>(kvEntry_Value(entry)),
                     static_cast<std::size_t>(kvEntry_ValueLen(entry))};
    auto revision = kvEntry_Revision(entry);
    kvEntry_Destroy(entry);
    return Entry{SharedBreakerState::from_json(text), revision};
}

std::optional<std::uint64_t> KvBreakerStore::create(const std::string& key,
                                                    const SharedBreakerState& value) {
    std::lock_guard lock{impl_->mutex};
    auto* kv = impl_->open();
    auto text = value.to_json();
    std::uint64_t revision = 0;
    auto status =
        kvStore_Create(&revision, kv, key.c_str(), text.data(), static_cast<int>(text.size()));
    if (status == NATS_OK) return revision;
    if (is_conflict(status)) return std::nullopt;
    fail("creating breaker " + key, status);
}

std::optional<std::uint64_t> KvBreakerStore::update(const std::string& key,
                                                    const SharedBreakerState& value,
                                                    std::uint64_t last) {
    std::lock_guard lock{impl_->mutex};
    auto* kv = impl_->open();
    auto text = value.to_json();
    std::uint64_t revision = 0;
    auto status = kvStore_Update(&revision, kv, key.c_str(), text.data(),
                                 static_cast<int>(text.size()), last);
    if (status == NATS_OK) return revision;
    if (is_conflict(status)) return std::nullopt;
    fail("updating breaker " + key, status);
}

}  // namespace ordo::platform
