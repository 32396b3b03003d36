#pragma once

// The webhook projection: a sink that forwards events to an HTTP endpoint.

#include <chrono>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include "platform/core/clock.hpp"
#include "platform/http/http_client.hpp"
#include "projections/projection.hpp"

namespace ordo::projections {

struct WebhookOptions {
    std::string name = "webhook";          // the projection's name: its checkpoints and breaker
    std::string url;                       // https://, or http:// (loopback, development)
    std::vector<std::string> event_types;  // empty: every event
    std::chrono::milliseconds timeout{5000};
    std::string ca_file;  // https: the CAs to trust instead of the system's (PEM)
    // Keys that sign each delivery (webhook_signature::parse_secrets); empty: unsigned.
    std::vector<std::string> signing_keys;
    const platform::Clock* clock = nullptr;  // the signatures' timestamps; null: the system's
};

// "OrderPlaced, OrderCancelled": the event types a webhook forwards. Throws
// platform::InvalidInput for a name that is not an event type's shape.
std::vector<std::string> parse_event_types(const std::string& text);

// Sends one POST; an http_client::Client's, or a stand-in in tests.
using HttpPost = std::function<platform::http_client::Response(
    const std::string& url, const std::vector<std::pair<std::string, std::string>>& headers,
    const std::string& body, std::chrono::milliseconds timeout)>;

// A projection whose sink is an HTTP endpoint: each selected event is POSTed as JSON, with
// the event's trace context in `traceparent`, its id in `Ordo-Event-Id` and `webhook-id`, the
// attempt's time in `webhook-timestamp` and, with signing keys, `webhook-signature` (the
// Standard Webhooks scheme, see webhook_signature.hpp).
//
// Delivery is at least once: the POST happens inside the batch's transaction, so a POST that
// fails (unreachable, timeout, 408, 429, 5xx: transient) rolls the batch back and the
// checkpoint stays where it was; a batch that fails after some POSTs went out sends them
// again. Receivers deduplicate by webhook-id (the event's id). Any other 4xx is the event's
// fault (permanent): it goes to the dead letters. So does a receiver whose TLS certificate
// does not verify (http_client::Untrusted): permanent until the configuration is fixed, then
// the dead letters are retried.
class WebhookProjection final : public Projection {
   public:
    // Throws platform::InvalidInput for a URL that is not http(s):// or a CA file that does
    // not load. Without `post`, an http_client::Client with the options' CA file sends.
    explicit WebhookProjection(WebhookOptions options, HttpPost post = {});

    std::string name() const override { return options_.name; }
    std::vector<std::string> categories() const override { return {}; }
    void apply(ReadModelTxn& txn, const eventstore::RecordedEvent& event) override;
    std::chrono::milliseconds worst_apply() const override { return options_.timeout; }

    // The JSON body POSTed for `event`.
    static std::string body(const eventstore::RecordedEvent& event);

   private:
    WebhookOptions options_;
    HttpPost post_;
};

}  // namespace ordo::projections
