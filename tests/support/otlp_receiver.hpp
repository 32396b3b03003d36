// A local OTLP/HTTP JSON collector for tests: it keeps the spans it is sent, can hold requests
// unanswered, and serves HTTPS when given TLS files.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "platform/core/log.hpp"
#include "platform/core/metrics.hpp"
#include "platform/http/http.hpp"
#include "platform/http/http_server.hpp"

namespace ordo::testing {

// A local OTLP/HTTP JSON collector on a free port: it keeps every span it is sent, each with
// the service.name of its resource added as "service". It can be told to hold requests
// (a collector that accepts connections but does not answer) until released. Given TLS files,
// it serves HTTPS (as "localhost").
class OtlpReceiver {
   public:
    explicit OtlpReceiver(platform::http::TlsFiles tls = {}) {
        platform::http::Router router;
        router.add(
            "POST", "/v1/traces", platform::http::Access::open, [this](platform::http::Request& r) {
                wait_while_held();
                auto body = nlohmann::json::parse(r.body, nullptr, false);
                std::lock_guard lock{mutex_};
                ++requests_;
                content_types_.push_back(r.header("content-type").value_or(""));
                if (!body.is_discarded()) {
                    for (const auto& rs : body.value("resourceSpans", nlohmann::json::array())) {
                        std::string service;
                        for (const auto& a :
                             rs["resource"].value("attributes", nlohmann::json::array())) {
                            if (a["key"] == "service.name")
                                service = a["value"].value("stringValue", "");
                        }
                        for (const auto& ss : rs.value("scopeSpans", nlohmann::json::array())) {
                            for (auto span : ss.value("spans", nlohmann::json::array())) {
                                span["service"] = service;
                                spans_.push_back(std::move(span));
                            }
                        }
                    }
                }
                return platform::http::Response::json(200, nlohmann::json::object());
            });
        platform::http::ServerOptions options;
        options.tls = std::move(tls);
        server_ = std::make_unique<platform::http::Server>(
            std::move(options), std::move(router), platform::Logger::null_logger(), registry_);
        server_->start();
    }
    ~OtlpReceiver() {
        release();
        server_->stop();
    }

    // The endpoint to put in OTEL_EXPORTER_OTLP_ENDPOINT.
    std::string endpoint() const {
        return server_->tls() ? "https://localhost:" + std::to_string(server_->port())
                              : "http://127.0.0.1:" + std::to_string(server_->port());
    }

    std::vector<nlohmann::json> spans() const {
        std::lock_guard lock{mutex_};
        return spans_;
    }
    std::vector<nlohmann::json> spans_of_trace(const std::string& trace_id) const {
        std::vector<nlohmann::json> out;
        for (auto& s : spans()) {
            if (s.value("traceId", "") == trace_id) out.push_back(std::move(s));
        }
        return out;
    }
    int requests() const {
        std::lock_guard lock{mutex_};
        return requests_;
    }
    std::vector<std::string> content_types() const {
        std::lock_guard lock{mutex_};
        return content_types_;
    }

    void hold() {
        std::lock_guard lock{mutex_};
        held_ = true;
    }
    void release() {
        {
            std::lock_guard lock{mutex_};
            held_ = false;
        }
        cv_.notify_all();
    }
    // Requests waiting in hold().
    int waiting() const {
        std::lock_guard lock{mutex_};
        return waiting_;
    }

    // A string attribute of a span; nullopt when absent.
    static std::optional<nlohmann::json> attribute(const nlohmann::json& span,
                                                   const std::string& key) {
        for (const auto& a : span.value("attributes", nlohmann::json::array())) {
            if (a.value("key", "") == key) return a["value"];
        }
        return std::nullopt;
    }

   private:
    void wait_while_held() {
        std::unique_lock lock{mutex_};
        ++waiting_;
        cv_.wait(lock, [this] { return !held_; });
        --waiting_;
    }

    mutable std::mutex mutex_;
    std::condition_variable cv_;
    bool held_ = false;
    int waiting_ = 0;
    int requests_ = 0;
    std::vector<std::string> content_types_;
    std::vector<nlohmann::json> spans_;
    platform::metrics::Registry registry_;
    std::unique_ptr<platform::http::Server> server_;
};

}  // namespace ordo::testing
