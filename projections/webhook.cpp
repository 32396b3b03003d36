// The webhook projection: POSTs selected events to an HTTP endpoint, signed when keys are set.

#include "projections/webhook.hpp"

#include <algorithm>

#include <nlohmann/json.hpp>

#include "platform/core/errors.hpp"
#include "platform/core/trace.hpp"
#include "projections/webhook_signature.hpp"

namespace ordo::projections {
namespace {

constexpr std::size_t kMaxEventTypes = 256;
constexpr std::size_t kMaxTypeLength = 128;
constexpr std::size_t kMaxErrorBody = 200;

bool is_type_char(char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
           c == '_' || c == '-';
}

}  // namespace

std::vector<std::string> parse_event_types(const std::string& text) {
    std::vector<std::string> out;
    std::size_t start = 0;
    while (start <= text.size()) {
        auto end = text.find(',', start);
        if (end == std::string::npos) end = text.size();
        auto part = text.substr(start, end - start);
        start = end + 1;
        part.erase(0, part.find_first_not_of(" \t"));
        part.erase(part.find_last_not_of(" \t") + 1);
        if (part.empty()) continue;
        if (part.size() > kMaxTypeLength || !std::all_of(part.begin(), part.end(), is_type_char)) {
            throw platform::InvalidInput("webhook event type \"" + part +
                                         "\" must be 1 to 128 characters of [A-Za-z0-9._-]");
        }
        out.push_back(part);
        if (out.size() > kMaxEventTypes) {
            throw platform::InvalidInput("at most 256 webhook event types");
        }
    }
    return out;
}

WebhookProjection::WebhookProjection(WebhookOptions options, HttpPost post)
    : options_{std::move(options)}, post_{std::move(post)} {
    if (options_.url.rfind("https://", 0) != 0 && options_.url.rfind("http://", 0) != 0) {
        throw platform::InvalidInput("webhook URL must start with https:// or http://: " +
                                     options_.url);
    }
    if (!post_) {
        platform::http_client::Client client{{.ca_file = options_.ca_file}};
        post_ = [client](const std::string& url,
                         const std::vector<std::pair<std::string, std::string>>& headers,
                         const std::string& body, std::chrono::milliseconds timeout) {
            return client.post(url, headers, body, timeout);
        };
    }
}

std::string WebhookProjection::body(const eventstore::RecordedEvent& event) {
    return nlohmann::json{{"event_id", event.event_id},
                          {"type", event.type},
                          {"schema_version", event.schema_version},
                          {"stream", event.stream_id},
                          {"version", event.version},
                          {"position", event.position},
                          {"recorded_at", event.recorded_at},
                          {"payload", event.payload},
                          {"metadata", event.metadata.to_json()}}
        .dump();
}

void WebhookProjection::apply(ReadModelTxn&, const eventstore::RecordedEvent& event) {
    const auto& types = options_.event_types;
    if (!types.empty() && std::find(types.begin(), types.end(), event.type) == types.end()) {
        return;
    }
    static const platform::SystemClock system_clock;
    const platform::Clock& clock = options_.clock ? *options_.clock : system_clock;
    const auto timestamp =
        std::chrono::duration_cast<std::chrono::seconds>(clock.now().time_since_epoch()).count();
    const std::string payload = body(event);
    std::vector<std::pair<std::string, std::string>> headers{
        {"Content-Type", "application/json"},
        {"Ordo-Event-Id", event.event_id},
        {"webhook-id", event.event_id},
        {"webhook-timestamp", std::to_string(timestamp)}};
    if (!options_.signing_keys.empty()) {
        headers.emplace_back("webhook-signature",
                             webhook_signature::signature_header(
                                 options_.signing_keys, event.event_id, timestamp, payload));
    }
    if (auto trace = eventstore::trace_of(event.metadata)) {
        headers.emplace_back("traceparent", trace->traceparent());
        if (!trace->tracestate.empty()) headers.emplace_back("tracestate", trace->tracestate);
    }
    auto response = post_(options_.url, headers, payload, options_.timeout);
    if (response.status >= 200 && response.status < 300) return;
    auto detail = "webhook " + options_.url + " answered " + std::to_string(response.status) +
                  " for event " + event.event_id + ": " + response.body.substr(0, kMaxErrorBody);
    if (response.status == 408 || response.status == 429 || response.status >= 500 ||
        response.status < 200) {
        throw platform::Unavailable(detail);
    }
    throw platform::InvalidInput(detail);
}

}  // namespace ordo::projections
