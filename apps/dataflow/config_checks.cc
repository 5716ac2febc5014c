#include <absl/strings/ascii.h>
#include <absl/strings/str_join.h>
#include <absl/strings/str_split.h>
#include <yaml-cpp/yaml.h>

#include <set>
#include <string>
#include <vector>

#include "config_keys.h"
#include "config_parts.h"
#include "config_reader.h"
#include "dataflow/messagepipeline/loopback.h"

namespace dataflow::app::yaml_config {

// Checks that wiring refers to things that exist: in-process names, unique service names.
void CheckWiring(const ProgramConfig& c, Errors& errors) {
  std::set<std::string> topics(c.in_process_topics.begin(), c.in_process_topics.end());
  std::set<std::string> subscriptions;
  std::set<std::string> subscribed_topics;
  for (std::size_t i = 0; i < c.in_process_subscriptions.size(); ++i) {
    const auto& [name, topic] = c.in_process_subscriptions[i];
    subscriptions.insert(name);
    subscribed_topics.insert(topic);
    if (!topics.contains(topic)) {
      errors.push_back({Index("in_process.subscriptions", i) + ".topic",
                        "unknown in-process topic \"" + topic + "\""});
    }
  }
  // An in-process publish completes when every subscription acked it; with none, a message
  // published there would be lost (the broker refuses the publish).
  for (std::size_t i = 0; i < c.in_process_topics.size(); ++i) {
    if (!subscribed_topics.contains(c.in_process_topics[i])) {
      errors.push_back({Index("in_process.topics", i),
                        "topic \"" + c.in_process_topics[i] +
                            "\" has no subscription: messages published to it would be lost"});
    }
  }
  std::set<std::string> names;
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    const auto& s = c.services[i];
    const std::string path = Index("services", i);
    if (!s.name.empty() && !names.insert(s.name).second) {
      errors.push_back({path + ".name", "duplicate service name \"" + s.name + "\""});
    }
    const std::string at = path + "." + s.kind();
    auto check_source = [&](const SourceConfig& src) {
      if (c.create_pubsub_resources && src.kind == SourceConfig::Kind::kPubsub &&
          src.topic.empty()) {
        errors.push_back({at + ".source.pubsub.topic",
                          "missing: create_pubsub_resources needs the subscription's topic"});
      }
      if (src.kind == SourceConfig::Kind::kInProcess && !src.subscription.empty() &&
          !subscriptions.contains(src.subscription)) {
        errors.push_back({at + ".source.in_process.subscription",
                          "unknown in-process subscription \"" + src.subscription + "\""});
      }
    };
    auto check_topic = [&](const TopicSinkConfig& sink, const std::string& topic,
                           const std::string& topic_path) {
      if (sink.kind == TopicSinkConfig::Kind::kInProcess && !topic.empty() &&
          !topics.contains(topic)) {
        errors.push_back({topic_path, "unknown in-process topic \"" + topic + "\""});
      }
    };
    auto check_dead_letter = [&](bool in_process, const std::string& topic) {
      if (in_process && !topic.empty() && !topics.contains(topic)) {
        errors.push_back({at + ".dead_letter_topic", "unknown in-process topic \"" + topic + "\""});
      }
    };
    std::visit(
        [&](const auto& spec) {
          using Spec = std::decay_t<decltype(spec)>;
          if constexpr (std::is_same_v<Spec, IngestionConfig>) {
            check_dead_letter(spec.sink.kind == TopicSinkConfig::Kind::kInProcess,
                              spec.common.dead_letter_topic);
          } else {
            check_dead_letter(spec.source.kind == SourceConfig::Kind::kInProcess,
                              spec.common.dead_letter_topic);
          }
        },
        s.spec);
    if (const auto* ing = std::get_if<IngestionConfig>(&s.spec)) {
      for (const auto& [route, topic] : ing->routes)
        check_topic(ing->sink, topic, at + ".routes." + route);
      check_topic(ing->sink, ing->default_topic, at + ".default_topic");
    } else if (const auto* en = std::get_if<EnrichmentConfig>(&s.spec)) {
      check_source(en->source);
      check_topic(en->sink, en->topic, at + ".topic");
    } else if (const auto* bq = std::get_if<BigQueryConfig>(&s.spec)) {
      check_source(bq->source);
    } else if (const auto* ice = std::get_if<IceStoreConfig>(&s.spec)) {
      check_source(ice->source);
    }
  }
}

// Passwords that would cross the network in plaintext, and TLS without a certificate check.
void SecurityWarnings(const ProgramConfig& c, std::vector<ConfigError>& warnings) {
  for (std::size_t i = 0; i < c.services.size(); ++i) {
    const std::string at = Index("services", i) + "." + c.services[i].kind();
    if (const auto* ing = std::get_if<IngestionConfig>(&c.services[i].spec)) {
      const std::string& url = ing->mqtt.broker_url;
      const std::size_t sep = url.find("://");
      const std::string scheme = absl::AsciiStrToLower(url.substr(0, sep));
      std::string_view hostport(url);
      if (sep != std::string::npos) hostport.remove_prefix(sep + 3);
      hostport = hostport.substr(0, hostport.find('/'));
      const bool plaintext = scheme == "tcp" || scheme == "mqtt" || scheme == "ws";
      if (!ing->mqtt.password.empty() && plaintext && !IsLoopbackHost(HostOfHostPort(hostport))) {
        warnings.push_back({at + ".mqtt.password",
                            "sent in plaintext (" + scheme +
                                "://) to a host that is not this machine: use ssl://, mqtts:// "
                                "or wss://"});
      }
      if (ing->mqtt.insecure_skip_verify) {
        warnings.push_back({at + ".mqtt.insecure_skip_verify",
                            "on: the broker's certificate is not checked, so anyone on the path "
                            "can pose as the broker (and read the password)"});
      }
    } else if (const auto* en = std::get_if<EnrichmentConfig>(&c.services[i].spec)) {
      if (en->cache.redis && !en->cache.redis->password.empty() &&
          !IsLoopbackHost(HostOfHostPort(en->cache.redis->addr))) {
        warnings.push_back({at + ".cache.redis.password",
                            "sent in plaintext (this Redis client has no TLS) to a host that is "
                            "not this machine: keep Redis on a private network or a TLS tunnel"});
      }
    }
  }
}

// The safety net behind Reader::Quote: messages from the libraries (and any echo missed)
// never show a withheld value. Values of one to three characters are not searched for: they
// would garble every message (a "1" in each number) and are no secret worth the name.
void Scrub(std::vector<ConfigError>& list, const std::vector<std::string>& withheld) {
  for (ConfigError& e : list) {
    for (const std::string& w : withheld) {
      if (w.size() < 4) continue;
      for (std::string* text : {&e.path, &e.message}) {
        for (std::size_t at = text->find(w); at != std::string::npos; at = text->find(w, at)) {
          text->replace(at, w.size(), kWithheld);
          at += std::string_view(kWithheld).size();
        }
      }
    }
  }
}

}  // namespace dataflow::app::yaml_config
