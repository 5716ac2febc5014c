#include "dataflow/mqttconverter/mqtt_config.h"

#include <absl/strings/ascii.h>
#include <absl/strings/numbers.h>
#include <absl/strings/str_cat.h>
#include <absl/strings/str_split.h>

#include <cstdint>
#include <cstdlib>
#include <limits>

namespace dataflow::mqttconverter {
namespace {

absl::Status Invalid(const std::string& field, const std::string& problem) {
  return absl::InvalidArgumentError(absl::StrCat("mqtt config: ", field, ": ", problem));
}

// Checks one filter level by level: '+' and '#' fill a whole level, '#' only at the end.
absl::Status ValidateFilter(const std::string& field, std::string_view filter) {
  if (filter.empty()) return Invalid(field, "topic filter is empty");
  if (filter.find('\0') != std::string_view::npos) return Invalid(field, "contains NUL");
  std::string_view plain = filter;
  if (filter.starts_with("$share/")) {
    std::string_view rest = filter.substr(7);
    auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) {
      return Invalid(field, absl::StrCat("shared subscription '", std::string(filter),
                                         "' needs $share/<group>/<filter>"));
    }
    std::string_view group = rest.substr(0, slash);
    if (group.find_first_of("+#") != std::string_view::npos) {
      return Invalid(field, "shared subscription group may not contain wildcards");
    }
    plain = rest.substr(slash + 1);
    if (plain.empty()) return Invalid(field, "shared subscription has an empty filter");
  }
  std::vector<absl::string_view> levels =
      absl::StrSplit(absl::string_view(plain.data(), plain.size()), '/');
  for (std::size_t i = 0; i < levels.size(); ++i) {
    std::string_view level(levels[i].data(), levels[i].size());
    if (level.find('#') != std::string_view::npos && (level != "#" || i + 1 != levels.size())) {
      return Invalid(field,
                     absl::StrCat("'#' must be a whole last level in '", std::string(filter), "'"));
    }
    if (level.find('+') != std::string_view::npos && level != "+") {
      return Invalid(field,
                     absl::StrCat("'+' must be a whole level in '", std::string(filter), "'"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

bool ParseAckMode(std::string_view text, AckMode* out) {
  std::string lower = absl::AsciiStrToLower(absl::string_view(text.data(), text.size()));
  if (lower == "pipeline") {
    *out = AckMode::kAfterPipelineAck;
  } else if (lower == "receipt") {
    *out = AckMode::kOnReceipt;
  } else {
    return false;
  }
  return true;
}

std::string_view AckModeName(AckMode mode) {
  return mode == AckMode::kOnReceipt ? "receipt" : "pipeline";
}

std::string_view StripSharePrefix(std::string_view filter) {
  if (!filter.starts_with("$share/")) return filter;
  std::string_view rest = filter.substr(7);
  auto slash = rest.find('/');
  return slash == std::string_view::npos ? std::string_view() : rest.substr(slash + 1);
}

bool TopicMatches(std::string_view filter, std::string_view topic) {
  filter = StripSharePrefix(filter);
  if (filter.empty()) return false;
  // A leading wildcard does not match $SYS-style topics (MQTT 3.1.1, 4.7.2).
  if (topic.starts_with('$') && (filter[0] == '+' || filter[0] == '#')) return false;
  std::size_t f = 0;
  std::size_t t = 0;
  while (true) {
    std::size_t f_end = filter.find('/', f);
    std::string_view f_level =
        filter.substr(f, f_end == std::string_view::npos ? std::string_view::npos : f_end - f);
    if (f_level == "#") return true;  // also matches the parent level ("a/#" matches "a")
    if (t > topic.size()) return false;
    std::size_t t_end = topic.find('/', t);
    std::string_view t_level =
        topic.substr(t, t_end == std::string_view::npos ? std::string_view::npos : t_end - t);
    if (f_level != "+" && f_level != t_level) return false;
    const bool f_last = f_end == std::string_view::npos;
    const bool t_last = t_end == std::string_view::npos;
    if (f_last || t_last) {
      if (f_last && t_last) return true;
      // "a/#" against "a": the filter has one more level, which must be '#'.
      return t_last && !f_last && filter.substr(f_end + 1) == "#";
    }
    f = f_end + 1;
    t = t_end + 1;
  }
}

const TopicMapping* FindRoute(const std::vector<TopicMapping>& mappings, std::string_view topic) {
  for (const TopicMapping& m : mappings) {
    if (TopicMatches(m.topic, topic)) return &m;
  }
  return nullptr;
}

absl::Status ValidateMqttClientOptions(const MqttClientOptions& config) {
  const std::string& url = config.broker_url;
  auto scheme_end = url.find("://");
  // Credentials in the URL would be printed wherever the URL is (logs, errors, validate):
  // refused before anything could echo the URL. The messages below never quote it either.
  const std::size_t authority = scheme_end == std::string::npos ? 0 : scheme_end + 3;
  if (url.substr(authority, url.find_first_of("/?#", authority) - authority).find('@') !=
      std::string::npos) {
    return Invalid("broker_url",
                   "contains credentials (user:password@), which would be printed wherever the "
                   "URL is: give them as username and password (the config keys, with ${VAR} to "
                   "keep them out of the file, or MQTT_USERNAME / MQTT_PASSWORD)");
  }
  if (scheme_end == std::string::npos) {
    return Invalid("broker_url", "has no scheme (tcp://host:port)");
  }
  // Case-insensitive, as ParseBrokerUrl reads it. tls:// is Paho's (the Go library's client)
  // name for ssl://.
  const std::string scheme = absl::AsciiStrToLower(url.substr(0, scheme_end));
  if (scheme != "tcp" && scheme != "ssl" && scheme != "tls" && scheme != "ws" && scheme != "wss" &&
      scheme != "mqtt" && scheme != "mqtts") {
    return Invalid(
        "broker_url",
        absl::StrCat("scheme '", scheme, "' is not one of tcp, ssl, tls, ws, wss, mqtt, mqtts"));
  }
  if (scheme_end + 3 >= url.size() || url[scheme_end + 3] == ':' || url[scheme_end + 3] == '/') {
    return Invalid("broker_url", "has no host");
  }
  if (config.keep_alive.count() < 0 || config.keep_alive.count() > 65535) {
    return Invalid("keep_alive", "must be 0..65535 seconds");
  }
  if (config.connect_timeout.count() <= 0) return Invalid("connect_timeout", "must be > 0");
  if (config.client_cert_file.empty() != config.client_key_file.empty()) {
    return Invalid("client_cert_file", "client_cert_file and client_key_file go together");
  }
  if (!config.clean_session && config.client_id.empty()) {
    return Invalid("client_id",
                   "a persistent session (clean_session=false) needs a fixed client_id");
  }
  if (config.client_id.size() > 65535) return Invalid("client_id", "longer than 65535 bytes");
  if (config.channel_capacity == 0) return Invalid("channel_capacity", "must be > 0");
  // 64 bytes: room for a fixed header, a topic and a small payload; MQTT's own maximum above.
  if (config.max_packet_bytes < 64 || config.max_packet_bytes > 268'435'460) {
    return Invalid("max_packet_bytes",
                   absl::StrCat("must be 64..268435460, got ", config.max_packet_bytes));
  }
  if (config.max_outstanding_bytes == 0) return Invalid("max_outstanding_bytes", "must be > 0");
  if (config.reconnect_min_backoff.count() <= 0) {
    return Invalid("reconnect_min_backoff", "must be >= 1s");
  }
  if (config.reconnect_max_backoff < config.reconnect_min_backoff) {
    return Invalid("reconnect_max_backoff", "must be >= reconnect_min_backoff");
  }
  if (config.max_subscribe_refusals < 1) return Invalid("max_subscribe_refusals", "must be >= 1");
  if (config.redelivery_min_backoff.count() <= 0) {
    return Invalid("redelivery_min_backoff", "must be > 0");
  }
  if (config.redelivery_max_backoff < config.redelivery_min_backoff) {
    return Invalid("redelivery_max_backoff", "must be >= redelivery_min_backoff");
  }
  if (config.write_timeout.count() <= 0) return Invalid("write_timeout", "must be > 0");
  if (config.topic_mappings.empty()) return Invalid("topic_mappings", "no topic mappings");
  for (std::size_t i = 0; i < config.topic_mappings.size(); ++i) {
    const TopicMapping& m = config.topic_mappings[i];
    std::string field = absl::StrCat("topic_mappings[", i, "]");
    if (m.name.empty()) return Invalid(field + ".name", "is empty");
    if (auto s = ValidateFilter(field + ".topic", m.topic); !s.ok()) return s;
    if (m.qos < 0 || m.qos > 2) {
      return Invalid(field + ".qos", absl::StrCat("must be 0, 1 or 2, got ", m.qos));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<MqttClientOptions> LoadMqttClientOptionsFromEnv(
    MqttClientOptions base, const messagepipeline::EnvLookup& lookup) {
  const messagepipeline::EnvLookup get = lookup ? lookup : messagepipeline::ProcessEnvironment();
  auto env_error = [](const std::string& var, const std::string& value, const std::string& want) {
    return absl::InvalidArgumentError(
        absl::StrCat("environment variable ", var, "='", value, "': ", want));
  };
  auto str = [&](const char* var, std::string* out) {
    if (auto v = get(var)) *out = *v;
  };
  str("MQTT_BROKER_URL", &base.broker_url);
  str("MQTT_CLIENT_ID", &base.client_id);
  str("MQTT_CLIENT_ID_PREFIX", &base.client_id_prefix);
  str("MQTT_USERNAME", &base.username);
  str("MQTT_PASSWORD", &base.password);
  str("MQTT_CA_CERT_FILE", &base.ca_cert_file);
  str("MQTT_CLIENT_CERT_FILE", &base.client_cert_file);
  str("MQTT_CLIENT_KEY_FILE", &base.client_key_file);

  struct SecondsVar {
    const char* name;
    std::chrono::seconds* out;
    long min;
  };
  for (SecondsVar s : {SecondsVar{"MQTT_KEEP_ALIVE_SECONDS", &base.keep_alive, 0},
                       SecondsVar{"MQTT_CONNECT_TIMEOUT_SECONDS", &base.connect_timeout, 1}}) {
    auto v = get(s.name);
    if (!v) continue;
    int64_t n = 0;
    if (!absl::SimpleAtoi(absl::string_view(*v), &n) || n < s.min || n > 65535) {
      return env_error(s.name, *v, absl::StrCat("want whole seconds in ", s.min, "..65535"));
    }
    *s.out = std::chrono::seconds(n);
  }
  struct IntVar {
    const char* name;
    std::int64_t min;
    std::int64_t max;
    std::function<void(std::int64_t)> set;
  };
  for (const IntVar& iv :
       {IntVar{"MQTT_WRITE_TIMEOUT_SECONDS", 1, 3600,
               [&](std::int64_t n) { base.write_timeout = std::chrono::seconds(n); }},
        IntVar{"MQTT_MAX_SUBSCRIBE_REFUSALS", 1, 1'000'000,
               [&](std::int64_t n) { base.max_subscribe_refusals = static_cast<int>(n); }},
        IntVar{"MQTT_REDELIVERY_MIN_BACKOFF_MS", 1, 3'600'000,
               [&](std::int64_t n) { base.redelivery_min_backoff = std::chrono::milliseconds(n); }},
        IntVar{"MQTT_REDELIVERY_MAX_BACKOFF_MS", 1, 3'600'000,
               [&](std::int64_t n) { base.redelivery_max_backoff = std::chrono::milliseconds(n); }},
        IntVar{"MQTT_MAX_PACKET_BYTES", 64, 268'435'460,
               [&](std::int64_t n) { base.max_packet_bytes = static_cast<std::size_t>(n); }},
        IntVar{"MQTT_MAX_OUTSTANDING_BYTES", 1, std::int64_t{1} << 40, [&](std::int64_t n) {
                 base.max_outstanding_bytes = static_cast<std::size_t>(n);
               }}}) {
    auto v = get(iv.name);
    if (!v) continue;
    std::int64_t n = 0;
    if (!absl::SimpleAtoi(absl::string_view(*v), &n) || n < iv.min || n > iv.max) {
      return env_error(iv.name, *v, absl::StrCat("want a whole number in ", iv.min, "..", iv.max));
    }
    iv.set(n);
  }
  struct BoolVar {
    const char* name;
    bool* out;
  };
  for (BoolVar b : {BoolVar{"MQTT_INSECURE_SKIP_VERIFY", &base.insecure_skip_verify},
                    BoolVar{"MQTT_CLEAN_SESSION", &base.clean_session}}) {
    const auto v = get(b.name);
    if (!v) continue;
    const std::optional<bool> parsed = messagepipeline::ParseBool(*v);
    if (!parsed) return env_error(b.name, *v, "want true or false");
    *b.out = *parsed;
  }
  if (auto v = get("MQTT_ACK_MODE"); v && !ParseAckMode(*v, &base.ack_mode)) {
    return env_error("MQTT_ACK_MODE", *v, "want pipeline or receipt");
  }
  if (auto v = get("MQTT_TOPIC")) {
    base.topic_mappings = {TopicMapping{.name = "default", .topic = *v, .qos = 1}};
  }
  if (auto v = get("MQTT_TOPIC_MAPPINGS")) {
    std::vector<TopicMapping> mappings;
    for (absl::string_view item : absl::StrSplit(absl::string_view(*v), ';', absl::SkipEmpty())) {
      std::pair<absl::string_view, absl::string_view> kv =
          absl::StrSplit(item, absl::MaxSplits('=', 1));
      TopicMapping m{.name = std::string(absl::StripAsciiWhitespace(kv.first))};
      absl::string_view filter = absl::StripAsciiWhitespace(kv.second);
      if (auto at = filter.rfind('@'); at != absl::string_view::npos) {
        int qos = 0;
        if (!absl::SimpleAtoi(filter.substr(at + 1), &qos)) {
          return env_error("MQTT_TOPIC_MAPPINGS", *v,
                           absl::StrCat("bad qos in '", std::string(item), "'"));
        }
        m.qos = qos;
        filter = filter.substr(0, at);
      }
      m.topic = std::string(filter);
      if (m.name.empty() || m.topic.empty()) {
        return env_error("MQTT_TOPIC_MAPPINGS", *v,
                         absl::StrCat("want name=filter[@qos], got '", std::string(item), "'"));
      }
      mappings.push_back(std::move(m));
    }
    base.topic_mappings = std::move(mappings);
  }
  if (auto s = ValidateMqttClientOptions(base); !s.ok()) {
    // Name the variable that sets the bad field, so an operator knows what to fix.
    static constexpr std::pair<const char*, const char*> kFieldToVar[] = {
        {"broker_url", "MQTT_BROKER_URL"},
        {"client_id", "MQTT_CLIENT_ID"},
        {"client_cert_file", "MQTT_CLIENT_CERT_FILE"},
        {"keep_alive", "MQTT_KEEP_ALIVE_SECONDS"},
        {"connect_timeout", "MQTT_CONNECT_TIMEOUT_SECONDS"},
        {"topic_mappings", "MQTT_TOPIC_MAPPINGS or MQTT_TOPIC"},
        {"redelivery_max_backoff", "MQTT_REDELIVERY_MAX_BACKOFF_MS"},
    };
    std::string_view msg(s.message().data(), s.message().size());
    std::string var = "MQTT_* variables";
    for (const auto& [field, name] : kFieldToVar) {
      if (msg.starts_with(absl::StrCat("mqtt config: ", field))) var = name;
    }
    return absl::InvalidArgumentError(absl::StrCat(std::string(msg), " (set by ", var, ")"));
  }
  return base;
}

}  // namespace dataflow::mqttconverter
