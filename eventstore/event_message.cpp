#include "eventstore/event_message.hpp"

#include <nlohmann/json.hpp>

#include "platform/trace.hpp"

namespace ordo::eventstore {
namespace {

std::optional<Checkpoint> header_checkpoint(const platform::jetstream::Message& m,
                                            const char* name) {
    auto it = m.headers.find(name);
    if (it == m.headers.end() || it->second.empty()) return std::nullopt;
    return Checkpoint::parse_token(it->second);
}

}  // namespace

std::optional<std::string> traceparent_of(const Metadata& metadata) {
    if (metadata.trace_id.size() != 32 || metadata.span_id.size() != 16) return std::nullopt;
    auto candidate = "00-" + metadata.trace_id + "-" + metadata.span_id + "-01";
    if (!platform::TraceContext::parse(candidate)) return std::nullopt;
    return candidate;
}

platform::jetstream::Message to_message(const RecordedEvent& e, int partition,
                                        const std::string& previous) {
    platform::jetstream::Message m;
    m.headers["Nats-Msg-Id"] = e.event_id;
    if (auto traceparent = traceparent_of(e.metadata)) m.headers["traceparent"] = *traceparent;
    m.headers["ordo-stream"] = e.stream_id;
    m.headers["ordo-version"] = std::to_string(e.version);
    m.headers["ordo-type"] = e.type;
    m.headers["ordo-order-key"] = e.checkpoint().token();
    m.headers["ordo-previous"] = previous;  // empty for a partition's first: not sent
    m.headers["ordo-partition"] = std::to_string(partition);
    m.headers["ordo-recorded-at"] = e.recorded_at;
    m.data = nlohmann::json{{"event_id", e.event_id},
                            {"stream", e.stream_id},
                            {"category", e.category},
                            {"version", e.version},
                            {"type", e.type},
                            {"schema_version", e.schema_version},
                            {"payload", e.payload},
                            {"metadata", e.metadata.to_json()},
                            {"recorded_at", e.recorded_at},
                            {"position", e.position},
                            {"transaction_id", e.transaction_id}}
                 .dump();
    return m;
}

std::optional<PublishedEvent> from_message(const platform::jetstream::Message& m) {
    auto key = header_checkpoint(m, "ordo-order-key");
    if (!key) return std::nullopt;
    try {
        auto j = nlohmann::json::parse(m.data);
        // Numbers must be integers: get<int64_t>() of 1e300 would be undefined behaviour.
        for (const char* name : {"position", "transaction_id", "version", "schema_version"}) {
            if (!j.at(name).is_number_integer()) return std::nullopt;
        }
        if (j.at("position").get<std::int64_t>() < 0) return std::nullopt;  // not a checkpoint
        RecordedEvent e{j.at("position").get<std::int64_t>(),
                        j.at("transaction_id").get<std::uint64_t>(),
                        j.at("stream").get<std::string>(),
                        j.at("category").get<std::string>(),
                        j.at("version").get<std::int64_t>(),
                        j.at("event_id").get<std::string>(),
                        j.at("type").get<std::string>(),
                        j.at("schema_version").get<int>(),
                        j.at("payload"),
                        Metadata::from_json(j.at("metadata")),
                        j.at("recorded_at").get<std::string>()};
        return PublishedEvent{*key, header_checkpoint(m, "ordo-previous").value_or(Checkpoint{}),
                              std::move(e)};
    } catch (const std::exception&) {
        return std::nullopt;
    }
}

}  // namespace ordo::eventstore
