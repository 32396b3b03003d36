// TracedProjection: each apply continues the event's trace with a span and a debug log line.

#include "projections/traced.hpp"

#include <exception>

#include <nlohmann/json.hpp>

#include "platform/core/trace.hpp"
#include "platform/http/otlp.hpp"

namespace ordo::projections {

TracedProjection::TracedProjection(std::unique_ptr<Projection> inner,
                                   platform::otlp::Exporter* spans, platform::Logger log)
    : inner_{std::move(inner)}, spans_{spans}, log_{std::move(log)} {}

bool TracedProjection::observed() const {
    return spans_ || log_.enabled(platform::LogLevel::debug);
}

void TracedProjection::apply(ReadModelTxn& txn, const eventstore::RecordedEvent& event) {
    if (!observed() || !eventstore::trace_of(event.metadata)) {
        inner_->apply(txn, event);
        return;
    }
    auto start = spans_ ? spans_->now() : platform::Clock::time_point{};
    std::string error;
    std::exception_ptr failure;  // passed on unchanged: the runtime classifies it
    try {
        inner_->apply(txn, event);
    } catch (const std::exception& e) {
        error = e.what();
        failure = std::current_exception();
    } catch (...) {
        error = "unknown exception";
        failure = std::current_exception();
    }
    record(event, start, error);
    if (failure) std::rethrow_exception(failure);
}

void TracedProjection::apply_batch(ReadModelTxn& txn, const EventRefs& events) {
    if (!observed()) {
        inner_->apply_batch(txn, events);
        return;
    }
    auto start = spans_ ? spans_->now() : platform::Clock::time_point{};
    inner_->apply_batch(txn, events);
    for (const auto* event : events) {
        if (eventstore::trace_of(event->metadata)) record(*event, start, {});
    }
}

// The span and the debug line of one applied event, a child of the span that appended it.
void TracedProjection::record(const eventstore::RecordedEvent& event,
                              platform::Clock::time_point start, const std::string& error) {
    auto parent = eventstore::trace_of(event.metadata);
    if (!parent) return;
    auto context = platform::child_span(*parent);
    if (log_.enabled(platform::LogLevel::debug)) {
        log_.log(platform::LogLevel::debug, error.empty() ? "applied" : "apply failed", context,
                 {{"projection", inner_->name()},
                  {"stream", event.stream_id},
                  {"version", event.version},
                  {"type", event.type},
                  {"event_id", event.event_id}});
    }
    if (!spans_) return;
    platform::otlp::Span span;
    span.context = context;
    span.parent_span_id = parent->span_id;
    span.name = "process " + event.category;
    span.kind = platform::otlp::SpanKind::consumer;
    span.start = start;
    span.end = spans_->now();
    span.attributes = {{"messaging.system", std::string("nats")},
                       {"messaging.operation.type", std::string("process")},
                       {"messaging.operation.name", std::string("process")},
                       {"messaging.consumer.group.name", inner_->name()},
                       {"messaging.message.id", event.event_id},
                       {"ordo.projection", inner_->name()},
                       {"ordo.stream", event.stream_id},
                       {"ordo.event.type", event.type},
                       {"ordo.position", std::int64_t{event.position}}};
    if (!error.empty()) {
        span.error = true;
        span.status_message = error.substr(0, 500);
    }
    spans_->record(std::move(span));
}

std::vector<std::unique_ptr<Projection>> traced(
    std::vector<std::unique_ptr<Projection>> projections, platform::otlp::Exporter* spans,
    const platform::Logger& log) {
    std::vector<std::unique_ptr<Projection>> out;
    out.reserve(projections.size());
    for (auto& p : projections) {
        out.push_back(std::make_unique<TracedProjection>(std::move(p), spans, log));
    }
    return out;
}

}  // namespace ordo::projections
