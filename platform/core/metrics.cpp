// Atomic updates of counters, gauges and histogram buckets, and the Prometheus text rendering
// with escaped label values and the shortest numbers that read back the same.
#include "platform/core/metrics.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <stdexcept>

namespace ordo::platform::metrics {
namespace {

void atomic_add(std::atomic<double>& target, double by) {
    double current = target.load(std::memory_order_relaxed);
    while (!target.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
    }
}

std::string escape_label(const std::string& value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string format_value(double v) {
    if (std::isnan(v)) return "NaN";
    if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
    // The shortest text that reads back as the same double: 0.05, not 0.050000000000000003.
    char buf[32];
    auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
    return ec == std::errc{} ? std::string{buf, end} : std::string{"NaN"};
}

std::string render_labels(const Labels& labels, const std::string& extra_key = {},
                          const std::string& extra_value = {}) {
    if (labels.empty() && extra_key.empty()) return {};
    std::string out = "{";
    bool first = true;
    for (const auto& [k, v] : labels) {
        if (!first) out += ",";
        out += k + "=\"" + escape_label(v) + "\"";
        first = false;
    }
    if (!extra_key.empty()) {
        if (!first) out += ",";
        out += extra_key + "=\"" + extra_value + "\"";
    }
    return out + "}";
}

}  // namespace

void Counter::inc(double by) {
    atomic_add(value_, by);
}
void Gauge::add(double by) {
    atomic_add(value_, by);
}

Histogram::Histogram(std::vector<double> bounds)
    : bounds_{std::move(bounds)},
      buckets_{std::make_unique<std::atomic<std::uint64_t>[]>(bounds_.size() + 1)} {
    std::sort(bounds_.begin(), bounds_.end());
}

void Histogram::observe(double v) {
    auto it = std::lower_bound(bounds_.begin(), bounds_.end(), v);
    buckets_[static_cast<std::size_t>(it - bounds_.begin())].fetch_add(1,
                                                                       std::memory_order_relaxed);
    atomic_add(sum_, v);
    count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<std::uint64_t> Histogram::cumulative_counts() const {
    std::vector<std::uint64_t> out(bounds_.size() + 1);
    std::uint64_t running = 0;
    for (std::size_t i = 0; i <= bounds_.size(); ++i) {
        running += buckets_[i].load(std::memory_order_relaxed);
        out[i] = running;
    }
    return out;
}

std::vector<double> default_latency_buckets() {
    return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

std::optional<double> quantile(const std::vector<double>& bounds,
                               const std::vector<std::uint64_t>& cumulative, double q) {
    if (cumulative.size() != bounds.size() + 1 || cumulative.back() == 0 || q < 0 || q > 1) {
        return std::nullopt;
    }
    const double rank = q * static_cast<double>(cumulative.back());
    for (std::size_t i = 0; i < bounds.size(); ++i) {
        if (static_cast<double>(cumulative[i]) < rank || cumulative[i] == 0) continue;
        const double lower = i == 0 ? 0.0 : bounds[i - 1];
        const auto below = i == 0 ? std::uint64_t{0} : cumulative[i - 1];
        const auto in_bucket = static_cast<double>(cumulative[i] - below);
        return lower + (bounds[i] - lower) * (rank - static_cast<double>(below)) / in_bucket;
    }
    return bounds.empty() ? std::nullopt : std::optional<double>{bounds.back()};
}

Registry::Series& Registry::series_for(const std::string& name, const std::string& help, Type type,
                                       const Labels& labels) {
    auto [it, inserted] = families_.try_emplace(name, Family{type, help, {}});
    if (!inserted && it->second.type != type) {
        throw std::logic_error("metric " + name + " registered with two types");
    }
    for (auto& s : it->second.series) {
        if (s->labels == labels) return *s;
    }
    auto& s = it->second.series.emplace_back(std::make_unique<Series>());
    s->labels = labels;
    return *s;
}

Counter& Registry::counter(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock{mutex_};
    auto& s = series_for(name, help, Type::counter, labels);
    if (!s.counter) s.counter = std::make_unique<Counter>();
    return *s.counter;
}

Gauge& Registry::gauge(const std::string& name, const std::string& help, const Labels& labels) {
    std::lock_guard lock{mutex_};
    auto& s = series_for(name, help, Type::gauge, labels);
    if (!s.gauge) s.gauge = std::make_unique<Gauge>();
    return *s.gauge;
}

Histogram& Registry::histogram(const std::string& name, const std::string& help,
                               const Labels& labels, std::vector<double> bounds) {
    std::lock_guard lock{mutex_};
    auto& s = series_for(name, help, Type::histogram, labels);
    if (!s.histogram) s.histogram = std::make_unique<Histogram>(std::move(bounds));
    return *s.histogram;
}

void Registry::gauge_callback(const std::string& name, const std::string& help,
                              const Labels& labels, std::function<double()> read) {
    std::lock_guard lock{mutex_};
    series_for(name, help, Type::gauge, labels).read = std::move(read);
}

std::string Registry::render() const {
    std::lock_guard lock{mutex_};
    std::string out;
    for (const auto& [name, family] : families_) {
        const char* type = family.type == Type::counter ? "counter"
                           : family.type == Type::gauge ? "gauge"
                                                        : "histogram";
        out += "# HELP " + name + " " + family.help + "\n";
        out += "# TYPE " + name + " " + type + "\n";
        for (const auto& s : family.series) {
            if (s->counter) {
                out += name + render_labels(s->labels) + " " + format_value(s->counter->value()) +
                       "\n";
            } else if (s->gauge || s->read) {
                double v = s->read ? s->read() : s->gauge->value();
                out += name + render_labels(s->labels) + " " + format_value(v) + "\n";
            } else if (s->histogram) {
                const auto& h = *s->histogram;
                auto counts = h.cumulative_counts();
                for (std::size_t i = 0; i < h.bounds().size(); ++i) {
                    out += name + "_bucket" +
                           render_labels(s->labels, "le", format_value(h.bounds()[i])) + " " +
                           std::to_string(counts[i]) + "\n";
                }
                out += name + "_bucket" + render_labels(s->labels, "le", "+Inf") + " " +
                       std::to_string(counts.back()) + "\n";
                out +=
                    name + "_sum" + render_labels(s->labels) + " " + format_value(h.sum()) + "\n";
                out += name + "_count" + render_labels(s->labels) + " " +
                       std::to_string(counts.back()) + "\n";
            }
        }
    }
    return out;
}

}  // namespace ordo::platform::metrics
