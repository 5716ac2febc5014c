// The enrichment service: keys, the cache chain (cache/chain_builder.h over a registered
// source of truth) and the enricher, around the library's EnrichmentService.
#include "dataflow/cache/chain_builder.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/metrics/service_families.h"
#include "services.h"

namespace dataflow::app {
namespace {
namespace mp = messagepipeline;
using Json = nlohmann::json;

// The chain, its layers' families registered for the service `name`.
absl::StatusOr<cache::FetcherPtr<std::string, Json>> CacheChain(const CacheChainConfig& c,
                                                                const BuildContext& context,
                                                                const std::string& name) {
  cache::CacheChainOptions<std::string, Json> options{.redis = c.redis};
  if (c.lru) options.lru = cache::LruCacheOptions{.max_size = c.lru->max_size, .ttl = c.lru->ttl};
  if (const std::string_view source = CacheSourceName(c); !source.empty()) {
    auto made = context.backends.cache_sources.Create(source, c, context);
    if (!made.ok()) return mp::Annotate(made.status(), "cache." + std::string(source));
    options.source = *std::move(made);
  }
  auto chain = cache::BuildCacheChain(options);
  if (!chain.ok()) return chain.status();
  chain->RegisterMetrics(context.telemetry, metrics::ServiceLabels(name));
  return chain->fetcher;
}

absl::StatusOr<enrichment::KeyExtractor<std::string>> Key(
    const std::vector<EnrichmentKeyConfig>& configs) {
  std::vector<enrichment::KeyExtractor<std::string>> keys;
  for (const EnrichmentKeyConfig& k : configs) {
    switch (k.kind) {
      case EnrichmentKeyConfig::Kind::kJsonField:
        keys.push_back(enrichment::JsonPayloadKey(k.name));
        break;
      case EnrichmentKeyConfig::Kind::kPayloadPath: {
        auto path = enrichment::JsonPath::Parse(k.name);
        if (!path.ok()) return mp::Annotate(path.status(), "key");
        keys.push_back(enrichment::PayloadPathKey(*std::move(path)));
        break;
      }
      case EnrichmentKeyConfig::Kind::kAttribute:
        keys.push_back(enrichment::AttributeKey(k.name));
        break;
      case EnrichmentKeyConfig::Kind::kTopicSegment:
        keys.push_back(enrichment::TopicSegmentKey(k.segment, k.name));
        break;
    }
  }
  return keys.size() == 1 ? keys.front() : enrichment::FirstKey(std::move(keys));
}

// The library service around the enricher; alone here so the service's construction changes
// in one place.
absl::StatusOr<std::shared_ptr<enrichment::EnrichmentService>> NewEnrichmentService(
    const std::string& name, const EnrichmentConfig& c,
    std::shared_ptr<enrichment::MessageEnricher> enricher,
    std::shared_ptr<mp::DeadLetterSink> dead_letter,
    std::shared_ptr<mp::MessagePublisher> publisher,
    std::shared_ptr<mp::MessageConsumer> consumer) {
  auto service = enrichment::EnrichmentService::CreateAsync(
      {.common = CommonOptions(name, c.common, std::move(dead_letter)),
       .in_flight = {.max_messages = c.max_in_flight},
       .input_format = c.input_format},
      std::move(consumer), std::move(enricher), mp::PublishEnvelope(std::move(publisher), c.topic));
  if (!service.ok()) return service.status();
  return std::shared_ptr<enrichment::EnrichmentService>(*std::move(service));
}

}  // namespace

absl::StatusOr<ServiceParts> BuildService(const std::string& name, const EnrichmentConfig& c,
                                          const BuildContext& context) {
  ServiceParts parts{.member = {.name = name, .kind = EnrichmentConfig::kKind}};
  auto chain = CacheChain(c.cache, context, name);
  if (!chain.ok()) return chain.status();
  auto key = Key(c.keys);
  if (!key.ok()) return key.status();
  // By default icestore's grouping attribute, `location`, comes from the document.
  enrichment::DocumentSelection selection{.fields = c.fields};
  if (c.attributes) {
    selection.attributes = *c.attributes;
  } else if (!c.location_attribute.empty()) {
    selection.attributes = {{.from = "location", .to = c.location_attribute}};
  }
  auto applier = enrichment::SelectingApplier(std::move(selection));
  auto enricher = enrichment::MakeEnricher<std::string, Json>(
      *chain, *key, applier, {.on_not_found = c.on_not_found, .on_error = c.on_error});
  if (!enricher.ok()) return enricher.status();
  auto dead = context.DeadLetters(BackendName(c.source.kind), c.source.project,
                                  c.common.dead_letter_topic, parts);
  if (!dead.ok()) return dead.status();
  auto publisher = context.Publisher(c.sink, {c.topic}, parts);
  if (!publisher.ok()) return publisher.status();
  if (auto s = context.Consume(c.source, parts); !s.ok()) return s;
  auto service = NewEnrichmentService(name, c, *enricher, *dead, *publisher, parts.member.consumer);
  if (!service.ok()) return service.status();
  (*service)->RegisterMetrics(context.telemetry, metrics::ServiceLabels(name));
  parts.member.service = *std::move(service);
  parts.member.close_after_stop.push_back(
      [chain = *chain](mp::Deadline) { return chain->Close(); });
  return parts;
}

}  // namespace dataflow::app
