// The structured logger: one JSON object per line with time, level, component, message,
// trace ids and fields.
#pragma once

#include <memory>
#include <string>
#include <string_view>

#include <nlohmann/json_fwd.hpp>

namespace spdlog {
class logger;
}

namespace ordo::platform {

struct TraceContext;

enum class LogLevel { debug, info, warn, error };

// Writes one JSON object per line: time, level, component, message, trace ids and any
// extra fields. Thread-safe; cheap to copy (shares one sink).
class Logger {
   public:
    // Logs to stderr at `level` and above.
    static Logger stderr_logger(std::string component, LogLevel level = LogLevel::info);
    // Logs nowhere; for tests and tools that want silence.
    static Logger null_logger();

    Logger with_component(std::string component) const;

    void log(LogLevel level, std::string_view message, const nlohmann::json& fields) const;
    void log(LogLevel level, std::string_view message, const TraceContext& trace,
             const nlohmann::json& fields) const;

    void debug(std::string_view message) const;
    void info(std::string_view message) const;
    void warn(std::string_view message) const;
    void error(std::string_view message) const;
    void info(std::string_view message, const nlohmann::json& fields) const;
    void warn(std::string_view message, const nlohmann::json& fields) const;
    void error(std::string_view message, const nlohmann::json& fields) const;

    bool enabled(LogLevel level) const;

   private:
    Logger(std::shared_ptr<spdlog::logger> sink, std::string component, LogLevel level);
    std::shared_ptr<spdlog::logger> sink_;
    std::string component_;
    LogLevel level_;
};

LogLevel parse_log_level(std::string_view text);

}  // namespace ordo::platform
