#include "dataflow/metrics/telemetry.h"

#include <absl/container/flat_hash_map.h>
#include <absl/container/flat_hash_set.h>
#include <prometheus/check_names.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <exception>
#include <map>
#include <mutex>
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

namespace internal {
// A Telemetry's scrape callbacks, shared with the Registrations that remove them.
struct Callbacks {
  std::uint64_t Add(std::function<void(ScrapeWriter&)> callback) {
    std::lock_guard lock(mu);
    const std::uint64_t id = next_id++;
    by_id.emplace(id, std::move(callback));
    return id;
  }

  void Remove(std::uint64_t id) {
    std::function<void(ScrapeWriter&)> removed;  // destroyed outside the lock
    std::lock_guard lock(mu);
    if (auto it = by_id.find(id); it != by_id.end()) {
      removed = std::move(it->second);
      by_id.erase(it);
    }
  }

  std::mutex mu;  // one scrape at a time; guards by_id and next_id
  std::map<std::uint64_t, std::function<void(ScrapeWriter&)>> by_id;  // id order = added order
  std::uint64_t next_id = 1;
};
}  // namespace internal

Registration::Registration(Registration&& other) noexcept
    : callbacks_(std::move(other.callbacks_)), id_(std::exchange(other.id_, 0)) {}

Registration& Registration::operator=(Registration&& other) noexcept {
  if (this != &other) {
    Reset();
    callbacks_ = std::move(other.callbacks_);
    id_ = std::exchange(other.id_, 0);
  }
  return *this;
}

void Registration::Reset() {
  if (auto callbacks = callbacks_.lock()) callbacks->Remove(id_);
  callbacks_.reset();
  id_ = 0;
}

bool Registration::active() const {
  auto callbacks = callbacks_.lock();
  if (callbacks == nullptr) return false;
  std::lock_guard lock(callbacks->mu);
  return callbacks->by_id.contains(id_);
}

Telemetry::Telemetry()
    : registry_(std::make_shared<prometheus::Registry>()),
      callbacks_(std::make_shared<internal::Callbacks>()) {}

Telemetry::~Telemetry() {
  // Callbacks (and the components they own) go before the registry their components count in.
  // The map is emptied under the lock, its callbacks destroyed outside it: a component a
  // callback owns may hold a Registration, which takes the lock to remove itself.
  std::map<std::uint64_t, std::function<void(ScrapeWriter&)>> callbacks;
  {
    std::lock_guard lock(callbacks_->mu);
    callbacks.swap(callbacks_->by_id);
  }
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

Registration Telemetry::Register(std::function<void(ScrapeWriter&)> callback) {
  return Registration(callbacks_, callbacks_->Add(std::move(callback)));
}

Telemetry::CallbackId Telemetry::AddCallback(std::function<void(ScrapeWriter&)> callback) {
  return callbacks_->Add(std::move(callback));
}

void Telemetry::RemoveCallback(CallbackId id) { callbacks_->Remove(id); }

std::vector<prometheus::MetricFamily> Telemetry::Collect() const {
  ScrapeWriter::Families families(&rejected_);
  for (prometheus::MetricFamily& family : registry_->Collect()) {
    for (prometheus::ClientMetric& metric : family.metric) {
      families.Add(family.name, family.help, family.type, std::move(metric));
    }
  }
  ScrapeWriter writer(&families);
  std::lock_guard lock(callbacks_->mu);
  for (const auto& [id, callback] : callbacks_->by_id) {
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
