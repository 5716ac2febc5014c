#include "dataflow/metrics/telemetry.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <exception>
#include <utility>

#include "dataflow/messagepipeline/logging.h"

namespace dataflow::metrics {
namespace {

// A label set as one string, to refuse a second sample with the same labels.
std::string LabelKey(const std::vector<prometheus::ClientMetric::Label>& labels) {
  std::string key;
  for (const auto& label : labels) {
    key.append(label.name).push_back('\0');
    key.append(label.value).push_back('\0');
  }
  return key;
}

void LogRejected(const std::string& name, const std::string& why) {
  static LogRateLimit limit(1);
  if (limit.Allow()) {
    Log()->error("metrics: left out metric={} reason=\"{}\" suppressed={}", name, why,
                 limit.suppressed());
  }
}

// The text format's HELP escaping (backslash, newline), which prometheus-cpp 1.0.1's
// TextSerializer leaves out: a newline in a help text would otherwise end the line.
std::string EscapeHelp(const std::string& help) {
  std::string out;
  out.reserve(help.size());
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

// One scrape's families, merged by name.
struct ScrapeWriter::Families {
  explicit Families(std::atomic<std::uint64_t>* rejected) : rejected(rejected) {}

  void Reject(const std::string& name, const std::string& why) {
    rejected->fetch_add(1);
    LogRejected(name, why);
  }

  // Adds `metric` to the family `name` (created with `help` and `type` if new).
  void Add(const std::string& name, const std::string& help, prometheus::MetricType type,
           prometheus::ClientMetric metric) {
    auto [it, inserted] = index.try_emplace(name, list.size());
    if (inserted) {
      list.push_back({.name = name, .help = help, .type = type, .metric = {}});
      seen.emplace_back();
    }
    prometheus::MetricFamily& family = list[it->second];
    if (family.type != type) return Reject(name, "added again with another type");
    if (!seen[it->second].insert(LabelKey(metric.label)).second) {
      return Reject(name, "label set added twice");
    }
    family.metric.push_back(std::move(metric));
  }

  void Write(const std::string& name, const std::string& help, prometheus::MetricType type,
             const Labels& labels, double value) {
    if (!prometheus::CheckMetricName(name)) return Reject(name, "invalid metric name");
    prometheus::ClientMetric metric;
    for (const auto& [label, label_value] : labels) {
      if (!prometheus::CheckLabelName(label)) return Reject(name, "invalid label name " + label);
      metric.label.push_back({.name = label, .value = label_value});
    }
    if (type == prometheus::MetricType::Counter) {
      metric.counter.value = value;
    } else {
      metric.gauge.value = value;
    }
    Add(name, help, type, std::move(metric));
  }

  std::atomic<std::uint64_t>* rejected;
  std::vector<prometheus::MetricFamily> list;
  std::vector<absl::flat_hash_set<std::string>> seen;  // per family in `list`
  absl::flat_hash_map<std::string, std::size_t> index;
};

void ScrapeWriter::Write(const std::string& name, const std::string& help, bool counter,
                         const Labels& labels, double value) {
  families_->Write(name, help,
                   counter ? prometheus::MetricType::Counter : prometheus::MetricType::Gauge,
                   labels, value);
}

Telemetry::Telemetry() : registry_(std::make_shared<prometheus::Registry>()) {}

Telemetry::~Telemetry() {
  // Callbacks (and the components they own) go before the registry their components count in.
  std::lock_guard lock(mu_);
  callbacks_.clear();
}

template <typename T, typename... Args>
T& Telemetry::Instrument(const std::string& name, const std::string& help, const Labels& labels,
                         Args&&... args) {
  try {
    return prometheus::detail::Builder<T>()
        .Name(name)
        .Help(help)
        .Register(*registry_)
        .Add(labels, std::forward<Args>(args)...);
  } catch (const std::exception& e) {
    // prometheus-cpp throws on a bad name or label name and on a name registered with
    // another type: hand out a metric that is counted nowhere.
    rejected_.fetch_add(1);
    LogRejected(name, e.what());
    auto discarded = std::make_shared<T>(std::forward<Args>(args)...);
    std::lock_guard lock(discarded_mu_);
    discarded_.push_back(discarded);
    return *discarded;
  }
}

prometheus::Counter& Telemetry::Counter(const std::string& name, const std::string& help,
                                        const Labels& labels) {
  return Instrument<prometheus::Counter>(name, help, labels);
}

prometheus::Gauge& Telemetry::Gauge(const std::string& name, const std::string& help,
                                    const Labels& labels) {
  return Instrument<prometheus::Gauge>(name, help, labels);
}

prometheus::Histogram& Telemetry::Histogram(const std::string& name, const std::string& help,
                                            const Labels& labels,
                                            const std::vector<double>& buckets) {
  return Instrument<prometheus::Histogram>(name, help, labels, buckets);
}

Telemetry::CallbackId Telemetry::AddCallback(std::function<void(ScrapeWriter&)> callback) {
  std::lock_guard lock(mu_);
  const CallbackId id = next_id_++;
  callbacks_.emplace(id, std::move(callback));
  return id;
}

void Telemetry::RemoveCallback(CallbackId id) {
  std::function<void(ScrapeWriter&)> removed;  // destroyed outside the lock
  std::lock_guard lock(mu_);
  if (auto it = callbacks_.find(id); it != callbacks_.end()) {
    removed = std::move(it->second);
    callbacks_.erase(it);
  }
}

std::vector<prometheus::MetricFamily> Telemetry::Collect() const {
  ScrapeWriter::Families families(&rejected_);
  for (prometheus::MetricFamily& family : registry_->Collect()) {
    for (prometheus::ClientMetric& metric : family.metric) {
      families.Add(family.name, family.help, family.type, std::move(metric));
    }
  }
  ScrapeWriter writer(&families);
  std::lock_guard lock(mu_);
  for (const auto& [id, callback] : callbacks_) {
    try {
      callback(writer);
    } catch (const std::exception& e) {
      Log()->error(
          "metrics: scrape callback threw, its samples are incomplete callback={} "
          "error=\"{}\"",
          id, e.what());
    } catch (...) {
      Log()->error("metrics: scrape callback threw a non-standard exception callback={}", id);
    }
  }
  for (prometheus::MetricFamily& family : families.list) {
    // prometheus-cpp keeps a family's metrics in a hash map: sort them so that scrapes list
    // them in one order.
    std::stable_sort(family.metric.begin(), family.metric.end(),
                     [](const prometheus::ClientMetric& a, const prometheus::ClientMetric& b) {
                       return a.label < b.label;
                     });
    family.help = EscapeHelp(family.help);
  }
  return std::move(families.list);
}

std::string Telemetry::Render() const { return prometheus::TextSerializer().Serialize(Collect()); }

}  // namespace dataflow::metrics
