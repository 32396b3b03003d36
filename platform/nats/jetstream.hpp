// The JetStream adapter: a reconnecting NATS connection that ensures streams, publishes
// batches with a window of unacknowledged messages, and runs ordered push consumers.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "platform/core/log.hpp"
#include "platform/nats/nats.hpp"

namespace ordo::platform::metrics {
class Registry;
}

namespace ordo::platform::jetstream {

// A message as published to or delivered from JetStream. Header names are written as given
// and read back lower-cased. cnats 3.4 cannot parse a header whose value is empty (it runs
// on into the next line), so empty values are never sent: a missing header reads as "".
struct Message {
    std::string subject;
    std::map<std::string, std::string> headers;
    std::string data;
    // When the stream stored it: set on deliveries of a subscription that asked for it
    // (subscribe_ordered's `stored_time`), else the epoch.
    std::chrono::system_clock::time_point stored{};
};

struct StreamConfig {
    std::string name;
    std::vector<std::string> subjects;
    std::chrono::seconds duplicate_window{120};  // Nats-Msg-Id deduplication
    std::chrono::hours max_age{168};
    // Copies kept over a JetStream cluster's nodes (R3 survives the loss of one node); a
    // single server holds 1. An existing stream with more keeps them (never lowered).
    int replicas = 1;
};

// One NATS connection with a JetStream context. It reconnects by itself, forever; calls made
// while it is away fail (or time out) instead of blocking without bound. Thread-safe;
// publish_batch calls are serialized.
class Client {
   public:
    class Subscription;

    // Counts ordo_nats_reconnects_total in `metrics` when given. Throws
    // std::invalid_argument for settings that can never work (see nats::ClientSettings).
    Client(const nats::ClientSettings& settings, Logger log, metrics::Registry* metrics = nullptr);
    ~Client();
    Client(const Client&) = delete;
    Client& operator=(const Client&) = delete;

    bool connected() const;

    // Creates the stream (file storage, limits retention), or updates it to this config.
    // Throws Unavailable when NATS cannot be reached, std::runtime_error when refused.
    void ensure_stream(const StreamConfig& config);

    // Publishes `batch` (subject, message) asynchronously with at most `window` messages
    // unacknowledged at once, and waits up to `timeout` for each acknowledgement. Returns
    // how many of the batch, counted from its start, JetStream acknowledged (a duplicate
    // acknowledgement counts): the caller may treat exactly that prefix as stored. Stops
    // sending at the first failure. Never throws for publish failures.
    std::size_t publish_batch(const std::vector<std::pair<std::string, Message>>& batch,
                              std::size_t window, std::chrono::milliseconds timeout);

    // An ordered push consumer over `filter` (e.g. "ordo.events.3.>") of `stream`, delivering
    // from the first message stored at or after `start_time` (all when nullopt) to
    // `on_message`, one at a time, in stream order, on a cnats thread. cnats recreates the
    // consumer after a gap or a reconnect. Destroying the subscription unsubscribes and waits
    // for a callback in progress; never destroy it from inside `on_message`. With
    // `stored_time`, each Message carries when the stream stored it (parsed per message).
    std::unique_ptr<Subscription> subscribe_ordered(
        const std::string& stream, const std::string& filter,
        std::optional<std::chrono::system_clock::time_point> start_time,
        std::function<void(Message)> on_message, bool stored_time = false);

    // For tests and tools.
    void purge_stream(const std::string& stream);
    std::uint64_t message_count(const std::string& stream);
    void delete_stream(const std::string& stream);  // a missing stream is not an error

   private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

class Client::Subscription {
   public:
    ~Subscription();
    Subscription(const Subscription&) = delete;
    Subscription& operator=(const Subscription&) = delete;

   private:
    friend class Client;
    struct Impl;
    explicit Subscription(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

}  // namespace ordo::platform::jetstream
