#include "platform/nats.hpp"

#include <nats/nats.h>
#include <nlohmann/json.hpp>

namespace ordo::platform::nats {

struct Connection::Impl {
    explicit Impl(Logger l) : log{std::move(l)} {}
    Logger log;
    natsOptions* options = nullptr;
    natsConnection* conn = nullptr;
};

namespace {
// The callbacks' closure is the connection's logger.
void on_disconnected(natsConnection*, void* closure) {
    static_cast<Logger*>(closure)->warn("NATS disconnected; reconnecting");
}
void on_reconnected(natsConnection*, void* closure) {
    static_cast<Logger*>(closure)->info("NATS reconnected");
}
}  // namespace

Connection::Connection(const std::string& url, Logger log)
    : impl_{std::make_unique<Impl>(std::move(log))} {
    natsOptions_Create(&impl_->options);
    natsOptions_SetURL(impl_->options, url.c_str());
    natsOptions_SetMaxReconnect(impl_->options, -1);
    natsOptions_SetReconnectWait(impl_->options, 250);
    natsOptions_SetRetryOnFailedConnect(impl_->options, true, nullptr, nullptr);
    natsOptions_SetDisconnectedCB(impl_->options, on_disconnected, &impl_->log);
    natsOptions_SetReconnectedCB(impl_->options, on_reconnected, &impl_->log);
    auto status = natsConnection_Connect(&impl_->conn, impl_->options);
    if (status != NATS_OK && status != NATS_NOT_YET_CONNECTED) {
        impl_->log.warn("NATS connection failed", {{"url", url}, {"error", natsStatus_GetText(status)}});
    }
}

Connection::~Connection() {
    if (impl_->conn) natsConnection_Destroy(impl_->conn);
    if (impl_->options) natsOptions_Destroy(impl_->options);
}

bool Connection::connected() const {
    return impl_->conn && natsConnection_Status(impl_->conn) == NATS_CONN_STATUS_CONNECTED;
}

}  // namespace ordo::platform::nats
