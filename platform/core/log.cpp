// The logger on spdlog: one shared stderr sink (or a null one for silence), each line a JSON
// object built here, and log levels parsed from text.
#include "platform/core/log.hpp"

#include <chrono>
#include <ctime>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/sinks/stdout_sinks.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "platform/core/trace.hpp"
#include "platform/core/utc_time.hpp"

namespace ordo::platform {
namespace {

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::debug:
            return "debug";
        case LogLevel::info:
            return "info";
        case LogLevel::warn:
            return "warn";
        case LogLevel::error:
            return "error";
    }
    return "info";
}

}  // namespace

Logger::Logger(std::shared_ptr<spdlog::logger> sink, std::string component, LogLevel level)
    : sink_{std::move(sink)}, component_{std::move(component)}, level_{level} {}

Logger Logger::stderr_logger(std::string component, LogLevel level) {
    static std::shared_ptr<spdlog::logger> shared = [] {
        auto logger = std::make_shared<spdlog::logger>(
            "ordo", std::make_shared<spdlog::sinks::stderr_sink_mt>());
        logger->set_pattern("%v");
        logger->set_level(spdlog::level::trace);
        logger->flush_on(spdlog::level::trace);
        return logger;
    }();
    return Logger{shared, std::move(component), level};
}

Logger Logger::null_logger() {
    static auto shared =
        std::make_shared<spdlog::logger>("null", std::make_shared<spdlog::sinks::null_sink_mt>());
    return Logger{shared, "null", LogLevel::error};
}

Logger Logger::with_component(std::string component) const {
    return Logger{sink_, std::move(component), level_};
}

bool Logger::enabled(LogLevel level) const {
    return level >= level_;
}

void Logger::log(LogLevel level, std::string_view message, const nlohmann::json& fields) const {
    if (!enabled(level)) return;
    nlohmann::json line = {{"time", format_utc(std::chrono::system_clock::now())},
                           {"level", level_name(level)},
                           {"component", component_},
                           {"message", message}};
    if (fields.is_object()) {
        for (const auto& [key, value] : fields.items()) line[key] = value;
    }
    sink_->info(line.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace));
}

void Logger::log(LogLevel level, std::string_view message, const TraceContext& trace,
                 const nlohmann::json& fields) const {
    if (!enabled(level)) return;
    nlohmann::json with_trace = fields.is_object() ? fields : nlohmann::json::object();
    with_trace["trace_id"] = trace.trace_id_hex();
    with_trace["span_id"] = trace.span_id_hex();
    log(level, message, with_trace);
}

void Logger::debug(std::string_view m) const {
    log(LogLevel::debug, m, nlohmann::json::object());
}
void Logger::info(std::string_view m) const {
    log(LogLevel::info, m, nlohmann::json::object());
}
void Logger::warn(std::string_view m) const {
    log(LogLevel::warn, m, nlohmann::json::object());
}
void Logger::error(std::string_view m) const {
    log(LogLevel::error, m, nlohmann::json::object());
}
void Logger::info(std::string_view m, const nlohmann::json& f) const {
    log(LogLevel::info, m, f);
}
void Logger::warn(std::string_view m, const nlohmann::json& f) const {
    log(LogLevel::warn, m, f);
}
void Logger::error(std::string_view m, const nlohmann::json& f) const {
    log(LogLevel::error, m, f);
}

LogLevel parse_log_level(std::string_view text) {
    if (text == "debug") return LogLevel::debug;
    if (text == "warn") return LogLevel::warn;
    if (text == "error") return LogLevel::error;
    return LogLevel::info;
}

}  // namespace ordo::platform
