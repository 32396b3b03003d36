// Spans encoded in OTLP's JSON mapping, and the exporter's thread: batches sent when full or
// due, backoff while the collector fails, dropped spans counted.
#include "platform/http/otlp.hpp"

#include <algorithm>
#include <cctype>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include <nlohmann/json.hpp>

#include "platform/core/comma_list.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http_client.hpp"

namespace ordo::platform::otlp {
namespace {

constexpr const char* kScopeName = "ordo";

std::string nanos(Clock::time_point t) {
    return std::to_string(
        std::chrono::duration_cast<std::chrono::nanoseconds>(t.time_since_epoch()).count());
}

nlohmann::json value_json(const AttributeValue& value) {
    return std::visit(
        [](const auto& v) -> nlohmann::json {
            using T = std::decay_t<decltype(v)>;
            if constexpr (std::is_same_v<T, std::string>) return {{"stringValue", v}};
            if constexpr (std::is_same_v<T, std::int64_t>) {
                return {{"intValue", std::to_string(v)}};  // int64 is a string in OTLP JSON
            }
            if constexpr (std::is_same_v<T, double>) return {{"doubleValue", v}};
            if constexpr (std::is_same_v<T, bool>) return {{"boolValue", v}};
        },
        value);
}

nlohmann::json attributes_json(const Attributes& attributes) {
    auto out = nlohmann::json::array();
    for (const auto& [key, value] : attributes) {
        out.push_back({{"key", key}, {"value", value_json(value)}});
    }
    return out;
}

nlohmann::json span_json(const Span& s) {
    nlohmann::json j = {
        {"traceId", s.context.trace_id_hex()},
        {"spanId", s.context.span_id_hex()},
        {"name", s.name},
        {"kind", static_cast<int>(s.kind)},
        {"startTimeUnixNano", nanos(s.start)},
        {"endTimeUnixNano", nanos(std::max(s.start, s.end))},
        {"attributes", attributes_json(s.attributes)},
        {"status", s.error ? nlohmann::json{{"code", 2}, {"message", s.status_message}}
                           : nlohmann::json{{"code", 0}}}};
    if (s.parent_span_id) j["parentSpanId"] = to_hex(*s.parent_span_id);
    if (!s.context.tracestate.empty()) j["traceState"] = s.context.tracestate;
    return j;
}

}  // namespace

nlohmann::json encode(const std::vector<Span>& spans, const std::string& service_name) {
    auto list = nlohmann::json::array();
    for (const auto& s : spans) list.push_back(span_json(s));
    return {
        {"resourceSpans",
         {{{"resource", {{"attributes", attributes_json({{"service.name", service_name}})}}},
           {"scopeSpans", {{{"scope", {{"name", kScopeName}}}, {"spans", std::move(list)}}}}}}}};
}

std::string traces_url(std::string endpoint) {
    while (!endpoint.empty() && endpoint.back() == '/') endpoint.pop_back();
    return endpoint + "/v1/traces";
}

namespace {

// An RFC 9110 token, and none of the headers the exporter itself frames the request with.
bool is_header_name(const std::string& name) {
    if (name.empty()) return false;
    for (char c : name) {
        const bool token = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                           (c >= '0' && c <= '9') ||
                           std::string_view{"!#$%&'*+-.^_`|~"}.find(c) != std::string_view::npos;
        if (!token) return false;
    }
    std::string lower;
    for (char c : name) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    for (const char* framing :
         {"host", "content-length", "content-type", "transfer-encoding", "connection"}) {
        if (lower == framing) return false;
    }
    return true;
}

}  // namespace

std::optional<ExportHeaders> parse_headers(std::string_view list) {
    auto trim = [](std::string_view s) {
        while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
        while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
        return s;
    };
    auto hex = [](char c) {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
    };
    auto decode = [&](std::string_view s) -> std::optional<std::string> {
        std::string out;
        for (std::size_t i = 0; i < s.size(); ++i) {
            char c = s[i];
            if (c == '%') {
                if (i + 2 >= s.size()) return std::nullopt;
                int hi = hex(s[i + 1]), lo = hex(s[i + 2]);
                if (hi < 0 || lo < 0) return std::nullopt;
                c = static_cast<char>(hi * 16 + lo);
                i += 2;
            }
            // No header may carry a control character (no CR/LF injection).
            if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return std::nullopt;
            out += c;
        }
        return out;
    };
    ExportHeaders headers;
    for (const auto& entry : comma_list(list)) {  // empty entries dropped, as SDKs do
        auto eq = entry.find('=');
        if (eq == std::string::npos) return std::nullopt;
        auto key = decode(trim(std::string_view{entry}.substr(0, eq)));
        auto value = decode(trim(std::string_view{entry}.substr(eq + 1)));
        if (!key || !is_header_name(*key) || !value) return std::nullopt;
        headers.emplace_back(std::move(*key), std::move(*value));
    }
    return headers;
}

struct Exporter::Impl {
    Impl(ExporterOptions o, Logger l, metrics::Registry& registry, const Clock& c)
        : options{std::move(o)},
          log{std::move(l)},
          clock{c},
          client{http_client::ClientOptions{.ca_file = options.ca_file}},
          dropped_full{registry.counter("ordo_spans_dropped_total",
                                        "Spans not exported: the queue was full, or the "
                                        "collector refused or did not answer",
                                        {{"reason", "queue_full"}})},
          dropped_failed{registry.counter("ordo_spans_dropped_total",
                                          "Spans not exported: the queue was full, or the "
                                          "collector refused or did not answer",
                                          {{"reason", "export_failed"}})},
          exported{registry.counter("ordo_spans_exported_total", "Spans the collector accepted")},
          queued{registry.gauge("ordo_spans_queued", "Spans waiting to be exported")} {
        options.max_queue = std::max<std::size_t>(options.max_queue, 1);
        options.max_batch = std::max<std::size_t>(options.max_batch, 1);
        thread = std::thread{[this] { run(); }};
    }

    void run() {
        auto backoff = options.flush_interval;
        std::unique_lock lock{mutex};
        while (true) {
            wake.wait_for(lock, options.flush_interval,
                          [this] { return stopping || queue.size() >= options.max_batch; });
            if (queue.empty()) {
                if (stopping) return;
                continue;
            }
            std::vector<Span> batch;
            auto n = std::min(queue.size(), options.max_batch);
            batch.reserve(n);
            for (std::size_t i = 0; i < n; ++i) {
                batch.push_back(std::move(queue.front()));
                queue.pop_front();
            }
            queued.set(static_cast<double>(queue.size()));
            bool last = stopping && queue.empty();
            lock.unlock();
            bool ok = send(batch);
            lock.lock();
            if (last) return;
            if (ok) {
                backoff = options.flush_interval;
                continue;
            }
            if (stopping) {
                // Shutting down with the collector away: one failed attempt is enough, so
                // that a hanging collector delays the exit by one timeout at most.
                dropped_failed.inc(static_cast<double>(queue.size()));
                queue.clear();
                queued.set(0);
                return;
            }
            // While the collector is away, spans pile up to the queue's bound and the rest
            // are dropped; each later attempt waits longer.
            wake.wait_for(lock, backoff, [this] { return stopping; });
            backoff = std::min(backoff * 2, options.max_backoff);
        }
    }

    bool send(const std::vector<Span>& batch) {
        std::string error;
        try {
            // Attributes carry client text (user agents, paths, errors): bytes that are not
            // UTF-8 are replaced rather than failing the whole batch.
            auto body = encode(batch, options.service_name)
                            .dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
            ExportHeaders headers{{"Content-Type", "application/json"}};
            headers.insert(headers.end(), options.headers.begin(), options.headers.end());
            auto res = client.post(options.url, headers, body, options.timeout);
            if (res.status >= 200 && res.status < 300) {
                exported.inc(static_cast<double>(batch.size()));
                if (failing) log.info("span export recovered", {{"url", options.url}});
                failing = false;
                return true;
            }
            error = "status " + std::to_string(res.status) + ": " + res.body.substr(0, 200);
        } catch (const std::exception& e) {
            error = e.what();
        }
        dropped_failed.inc(static_cast<double>(batch.size()));
        // Logged when it starts failing, not for every batch: the counter tells the rest.
        if (!failing) {
            log.warn("span export failing; dropping spans until the collector answers",
                     {{"url", options.url}, {"error", error}, {"dropped", batch.size()}});
        }
        failing = true;
        return false;
    }

    ExporterOptions options;
    Logger log;
    const Clock& clock;
    http_client::Client client;
    metrics::Counter& dropped_full;
    metrics::Counter& dropped_failed;
    metrics::Counter& exported;
    metrics::Gauge& queued;
    bool failing = false;  // the export thread's own

    std::mutex mutex;
    std::condition_variable wake;
    std::deque<Span> queue;
    bool stopping = false;
    std::thread thread;
};

Exporter::Exporter(ExporterOptions options, Logger log, metrics::Registry& registry,
                   const Clock& clock)
    : impl_{std::make_unique<Impl>(std::move(options), std::move(log), registry, clock)} {}

Exporter::~Exporter() {
    {
        std::lock_guard lock{impl_->mutex};
        impl_->stopping = true;
    }
    impl_->wake.notify_all();
    impl_->thread.join();
}

void Exporter::record(Span span) {
    bool full_batch = false;
    {
        std::lock_guard lock{impl_->mutex};
        if (impl_->stopping || impl_->queue.size() >= impl_->options.max_queue) {
            impl_->dropped_full.inc();
            return;
        }
        impl_->queue.push_back(std::move(span));
        impl_->queued.set(static_cast<double>(impl_->queue.size()));
        full_batch = impl_->queue.size() == impl_->options.max_batch;
    }
    if (full_batch) impl_->wake.notify_one();
}

Clock::time_point Exporter::now() const {
    return impl_->clock.now();
}

}  // namespace ordo::platform::otlp
