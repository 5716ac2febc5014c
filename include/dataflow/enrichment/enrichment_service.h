// EnrichmentService: consumer → N workers (enrich → publish) → ack/nack, a
// messagepipeline::StageService whose stage is the enricher.
//
// The processor is usually PublishEnvelope(): the enriched MessageData is published as the
// JSON envelope (with `enrichmentData`) and the input message is acked only once the
// publisher confirmed. An input that is itself an envelope (`input_format`, see
// messagepipeline::DecodeInput) is unwrapped first, so keys are looked for in its payload,
// its enrichmentData is kept and added to, and the output is one envelope, never an
// envelope inside an envelope. A message the enricher skips is acked and counted as skipped;
// a lookup error under the nack policy, or an input that does not decode, counts as a
// transform error; a failed publish as a processing error, the message going back (nack or
// dead letter) as it was received. Shutdown, dead letters and delivery attempts are those of
// every service; enrichment_metrics() says why messages were skipped. Thread-safe.
#pragma once

#include <absl/status/statusor.h>

#include <memory>
#include <string>
#include <string_view>

#include "dataflow/enrichment/enricher.h"
#include "dataflow/messagepipeline/service.h"
#include "dataflow/messagepipeline/service_options.h"
#include "dataflow/messagepipeline/stage_service.h"
#include "dataflow/metrics/registration.h"

namespace dataflow::enrichment {

struct EnrichmentServiceOptions {
  static constexpr std::string_view kDefaultName = "enrichment";
  messagepipeline::ServiceOptions common;  // an empty name: kDefaultName
  // Async processors: messages awaiting confirmation (end to end over in-process topics; as
  // large as ingestion's, so it is not the narrower window).
  messagepipeline::InFlightLimits in_flight{.max_messages = 4000};
  // How the input body is read: an envelope (Go's ingestion, ours by default) or raw bytes.
  messagepipeline::InputFormat input_format = messagepipeline::InputFormat::kAuto;
};

class EnrichmentService final : public messagepipeline::Service {
 public:
  static absl::StatusOr<std::unique_ptr<EnrichmentService>> Create(
      EnrichmentServiceOptions options, std::shared_ptr<messagepipeline::MessageConsumer> consumer,
      std::shared_ptr<MessageEnricher> enricher, messagepipeline::MessageProcessor processor);
  static absl::StatusOr<std::unique_ptr<EnrichmentService>> CreateAsync(
      EnrichmentServiceOptions options, std::shared_ptr<messagepipeline::MessageConsumer> consumer,
      std::shared_ptr<MessageEnricher> enricher, messagepipeline::AsyncMessageProcessor processor);

  absl::Status Start() override { return service_->Start(); }
  absl::Status Stop(messagepipeline::Deadline deadline) override {
    return service_->Stop(deadline);
  }
  absl::Status Stop(std::chrono::steady_clock::duration timeout) { return service_->Stop(timeout); }
  void Wait() { service_->Wait(); }
  [[nodiscard]] messagepipeline::ServiceMetrics metrics() const override {
    return service_->metrics();
  }
  [[nodiscard]] EnrichmentMetrics enrichment_metrics() const { return enricher_->metrics(); }
  // Exports enrichment_metrics() as the dataflow_enrichment_* families
  // (enrichment_metrics.h), labelled `labels`, on every scrape of `telemetry` until this
  // service is destroyed; a second call replaces the first. The families every service has
  // are the runner's (metrics/service_families.h), the cache layers' their own
  // (cache::CacheChain::RegisterMetrics).
  void RegisterMetrics(metrics::Telemetry& telemetry, const metrics::Labels& labels);

 private:
  EnrichmentService(std::shared_ptr<MessageEnricher> enricher,
                    std::unique_ptr<messagepipeline::StageService> service)
      : enricher_(std::move(enricher)), service_(std::move(service)) {}

  std::shared_ptr<MessageEnricher> enricher_;
  std::unique_ptr<messagepipeline::StageService> service_;
  metrics::Registration metrics_;  // last: removed before what it reads goes
};

}  // namespace dataflow::enrichment
