#include <absl/strings/str_cat.h>

#include "dataflow/enrichment/enricher.h"
#include "dataflow/enrichment/enrichment_service.h"
#include "dataflow/enrichment/keys.h"
#include "dataflow/messagepipeline/json_limits.h"

namespace dataflow::enrichment {

namespace mp = messagepipeline;
using messagepipeline::Message;

absl::StatusOr<FailurePolicy> ParseFailurePolicy(std::string_view name) {
  if (name == "skip") return FailurePolicy::kSkip;
  if (name == "pass_unenriched") return FailurePolicy::kPassUnenriched;
  if (name == "nack") return FailurePolicy::kNack;
  return absl::InvalidArgumentError(absl::StrCat("unknown enrichment failure policy \"",
                                                 std::string(name),
                                                 "\"; use skip, pass_unenriched or nack"));
}

std::string_view FailurePolicyName(FailurePolicy policy) {
  switch (policy) {
    case FailurePolicy::kSkip:
      return "skip";
    case FailurePolicy::kPassUnenriched:
      return "pass_unenriched";
    case FailurePolicy::kNack:
      return "nack";
  }
  return "unknown";
}

EnrichAction EnrichmentOutcomes::Enriched() {
  enriched_.fetch_add(1, std::memory_order_relaxed);
  return EnrichAction::kContinue;
}

EnrichAction EnrichmentOutcomes::NoKey() {
  no_key_.fetch_add(1, std::memory_order_relaxed);
  return EnrichAction::kContinue;
}

absl::StatusOr<EnrichAction> EnrichmentOutcomes::LookupFailed(const Message& message,
                                                              std::string_view key,
                                                              const absl::Status& error) {
  const bool not_found = absl::IsNotFound(error);
  (not_found ? not_found_ : fetch_errors_).fetch_add(1, std::memory_order_relaxed);
  const FailurePolicy policy = not_found ? options_.on_not_found : options_.on_error;
  static LogRateLimit not_found_limit;
  static LogRateLimit error_limit;
  LogRateLimit& limit = not_found ? not_found_limit : error_limit;
  if (limit.Allow()) {
    Log()->warn("enrichment lookup {} id={} key={} policy={} error=\"{}\" suppressed={}",
                not_found ? "found nothing" : "failed", message.data.id, key,
                FailurePolicyName(policy), error.ToString(), limit.suppressed());
  }
  switch (policy) {
    case FailurePolicy::kSkip:
      return EnrichAction::kSkip;
    case FailurePolicy::kPassUnenriched:
      return EnrichAction::kContinue;
    case FailurePolicy::kNack:
      return absl::Status(error.code(), absl::StrCat("enrichment lookup for key ", std::string(key),
                                                     ": ", error.message()));
  }
  return EnrichAction::kSkip;
}

EnrichmentMetrics EnrichmentOutcomes::Snapshot() const {
  return EnrichmentMetrics{.enriched = enriched_.load(std::memory_order_relaxed),
                           .no_key = no_key_.load(std::memory_order_relaxed),
                           .not_found = not_found_.load(std::memory_order_relaxed),
                           .fetch_errors = fetch_errors_.load(std::memory_order_relaxed)};
}

KeyExtractor<std::string> AttributeKey(std::string attribute) {
  return [attribute = std::move(attribute)](const Message& m) -> std::optional<std::string> {
    auto it = m.attributes.find(attribute);
    if (it == m.attributes.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

KeyExtractor<std::string> JsonPayloadKey(std::string field) {
  return PayloadPathKey(JsonPath::Member(std::move(field)));
}

namespace {

mp::StageServiceOptions StageOptions(const EnrichmentServiceOptions& o) {
  return {.common = o.common, .in_flight = o.in_flight};
}

// Unwraps an envelope input, then enriches. A message that fails here goes back (nack) or to
// the dead-letter topic as it was received: the envelope, not the payload unwrapped from it;
// one that fails downstream is put back by the service (StageResult::received).
mp::MessageStage EnrichStage(std::shared_ptr<MessageEnricher> enricher, mp::InputFormat format) {
  return [enricher = std::move(enricher), format](Message& m) -> absl::StatusOr<mp::StageResult> {
    auto received = mp::UnwrapInput(m, format);
    if (!received.ok()) return received.status();  // permanent
    absl::StatusOr<EnrichAction> action = enricher->Enrich(m);
    if (!action.ok()) {
      if (received->has_value()) m.data = std::move(**received);
      return action.status();
    }
    return mp::StageResult{.action = *action == EnrichAction::kSkip ? mp::StageAction::kSkip
                                                                    : mp::StageAction::kContinue,
                           .received = *std::move(received)};
  };
}

}  // namespace

absl::StatusOr<std::unique_ptr<EnrichmentService>> EnrichmentService::Create(
    EnrichmentServiceOptions options, std::shared_ptr<mp::MessageConsumer> consumer,
    std::shared_ptr<MessageEnricher> enricher, mp::MessageProcessor processor) {
  mp::SetDefaultName(options.common, EnrichmentServiceOptions::kDefaultName);
  if (!enricher) return absl::InvalidArgumentError(options.common.name + ": enricher is null");
  auto service =
      mp::StageService::Create(StageOptions(options), std::move(consumer),
                               EnrichStage(enricher, options.input_format), std::move(processor));
  if (!service.ok()) return service.status();
  return std::unique_ptr<EnrichmentService>(
      new EnrichmentService(std::move(enricher), *std::move(service)));
}

absl::StatusOr<std::unique_ptr<EnrichmentService>> EnrichmentService::CreateAsync(
    EnrichmentServiceOptions options, std::shared_ptr<mp::MessageConsumer> consumer,
    std::shared_ptr<MessageEnricher> enricher, mp::AsyncMessageProcessor processor) {
  mp::SetDefaultName(options.common, EnrichmentServiceOptions::kDefaultName);
  if (!enricher) return absl::InvalidArgumentError(options.common.name + ": enricher is null");
  auto service = mp::StageService::CreateAsync(StageOptions(options), std::move(consumer),
                                               EnrichStage(enricher, options.input_format),
                                               std::move(processor));
  if (!service.ok()) return service.status();
  return std::unique_ptr<EnrichmentService>(
      new EnrichmentService(std::move(enricher), *std::move(service)));
}

}  // namespace dataflow::enrichment
