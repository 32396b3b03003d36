// Prometheus metrics: counters, gauges and histograms in a registry that renders the text
// format; series references stay valid, so hot paths look them up once.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

namespace ordo::platform::metrics {

using Labels = std::map<std::string, std::string>;

class Counter {
   public:
    void inc(double by = 1.0);
    double value() const { return value_.load(std::memory_order_relaxed); }

   private:
    std::atomic<double> value_{0.0};
};

class Gauge {
   public:
    void set(double v) { value_.store(v, std::memory_order_relaxed); }
    void add(double by);
    double value() const { return value_.load(std::memory_order_relaxed); }

   private:
    std::atomic<double> value_{0.0};
};

class Histogram {
   public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    const std::vector<double>& bounds() const { return bounds_; }
    // Cumulative counts per bound, then +Inf.
    std::vector<std::uint64_t> cumulative_counts() const;
    double sum() const { return sum_.load(std::memory_order_relaxed); }
    std::uint64_t count() const { return count_.load(std::memory_order_relaxed); }

   private:
    std::vector<double> bounds_;
    std::unique_ptr<std::atomic<std::uint64_t>[]> buckets_;
    std::atomic<double> sum_{0.0};
    std::atomic<std::uint64_t> count_{0};
};

// Latency buckets in seconds, 1 ms to 10 s.
std::vector<double> default_latency_buckets();

// The q-quantile (0 <= q <= 1) of a histogram given its finite upper bounds, ascending, and
// its cumulative counts per bound with the +Inf count last (as cumulative_counts() and the
// text format give them), interpolated linearly inside the bucket the way Prometheus'
// histogram_quantile does: the first bucket starts at 0, and a quantile that falls in the
// +Inf bucket is the highest finite bound. nullopt when the histogram is empty or the
// counts do not fit the bounds.
std::optional<double> quantile(const std::vector<double>& bounds,
                               const std::vector<std::uint64_t>& cumulative, double q);

// A registry of metric families rendered in the Prometheus text format (version 0.0.4).
// Lookups take a lock; the returned references are stable for the registry's lifetime,
// so hot paths look a series up once and keep the reference.
class Registry {
   public:
    Counter& counter(const std::string& name, const std::string& help, const Labels& labels = {});
    Gauge& gauge(const std::string& name, const std::string& help, const Labels& labels = {});
    Histogram& histogram(const std::string& name, const std::string& help,
                         const Labels& labels = {},
                         std::vector<double> bounds = default_latency_buckets());
    // A gauge read at render time.
    void gauge_callback(const std::string& name, const std::string& help, const Labels& labels,
                        std::function<double()> read);

    std::string render() const;

   private:
    enum class Type { counter, gauge, histogram };
    struct Series {
        Labels labels;
        std::unique_ptr<Counter> counter;
        std::unique_ptr<Gauge> gauge;
        std::unique_ptr<Histogram> histogram;
        std::function<double()> read;
    };
    struct Family {
        Type type;
        std::string help;
        std::vector<std::unique_ptr<Series>> series;
    };
    Series& series_for(const std::string& name, const std::string& help, Type type,
                       const Labels& labels);

    mutable std::mutex mutex_;
    std::map<std::string, Family> families_;
};

}  // namespace ordo::platform::metrics
