// Enrichment: add data fetched by a key to each message.
//
// A KeyExtractor finds the key in a message (e.g. the device id), a fetcher looks the key up
// (any cache chain: LRU → Redis → Firestore, or anything with `Fetch(key) ->
// absl::StatusOr<V>`), and an Applier writes the value into the message, normally into
// `message.data.enrichment_data`. As in the original library:
//   - no key           → the message passes on unenriched;
//   - lookup failed    → by policy: skip (ack and drop; the default, as the original),
//                        pass it on unenriched, or nack it for redelivery (for transient
//                        backend outages).
// Not-found (absl::NotFoundError from the fetcher) and other failures have separate policies,
// counters and log lines. Enrichers are thread-safe if the fetcher and applier are.
#pragma once

#include <absl/status/statusor.h>
#include <absl/strings/str_cat.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "dataflow/messagepipeline/logging.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::enrichment {

template <typename K>
using KeyExtractor = std::function<std::optional<K>(const messagepipeline::Message&)>;

template <typename V>
using Applier = std::function<void(messagepipeline::Message&, const V&)>;

enum class FailurePolicy {
  kSkip,            // ack and drop the message (the original's behaviour)
  kPassUnenriched,  // let it through without enrichment
  kNack,            // nack it, so the broker redelivers it later
};

// "skip", "pass_unenriched" or "nack"; InvalidArgument naming the accepted values otherwise.
absl::StatusOr<FailurePolicy> ParseFailurePolicy(std::string_view name);
std::string_view FailurePolicyName(FailurePolicy policy);

struct EnricherOptions {
  FailurePolicy on_not_found = FailurePolicy::kSkip;
  FailurePolicy on_error = FailurePolicy::kSkip;
};

enum class EnrichAction { kContinue, kSkip };

struct EnrichmentMetrics {
  std::uint64_t enriched = 0;
  std::uint64_t no_key = 0;
  std::uint64_t not_found = 0;
  std::uint64_t fetch_errors = 0;
};

class MessageEnricher {
 public:
  virtual ~MessageEnricher() = default;
  // Continue (enriched or passed on), skip (ack and drop), or an error (nack).
  virtual absl::StatusOr<EnrichAction> Enrich(messagepipeline::Message& message) = 0;
  [[nodiscard]] virtual EnrichmentMetrics metrics() const = 0;
};

// Counts outcomes and applies the policies; the typed enricher below only fetches and applies.
class EnrichmentOutcomes {
 public:
  explicit EnrichmentOutcomes(EnricherOptions options) : options_(options) {}
  EnrichAction Enriched();
  EnrichAction NoKey();
  // Applies the not-found or error policy to a failed lookup of `key`.
  absl::StatusOr<EnrichAction> LookupFailed(const messagepipeline::Message& message,
                                            std::string_view key, const absl::Status& error);
  [[nodiscard]] EnrichmentMetrics Snapshot() const;

 private:
  const EnricherOptions options_;
  std::atomic<std::uint64_t> enriched_{0};
  std::atomic<std::uint64_t> no_key_{0};
  std::atomic<std::uint64_t> not_found_{0};
  std::atomic<std::uint64_t> fetch_errors_{0};
};

// Renders a key for logs (strings as they are, anything else through absl::StrCat).
template <typename K>
std::string KeyForLog(const K& key) {
  if constexpr (std::is_convertible_v<const K&, std::string_view>) {
    return std::string(std::string_view(key));
  } else {
    return absl::StrCat(key);
  }
}

template <typename K, typename V, typename Fetcher>
class FetchingEnricher final : public MessageEnricher {
 public:
  FetchingEnricher(std::shared_ptr<Fetcher> fetcher, KeyExtractor<K> key_extractor,
                   Applier<V> applier, EnricherOptions options)
      : fetcher_(std::move(fetcher)),
        key_extractor_(std::move(key_extractor)),
        applier_(std::move(applier)),
        outcomes_(options) {}

  absl::StatusOr<EnrichAction> Enrich(messagepipeline::Message& message) override {
    std::optional<K> key = key_extractor_(message);
    if (!key) return outcomes_.NoKey();
    absl::StatusOr<V> value = fetcher_->Fetch(*key);
    if (!value.ok()) return outcomes_.LookupFailed(message, KeyForLog(*key), value.status());
    applier_(message, *value);
    return outcomes_.Enriched();
  }

  [[nodiscard]] EnrichmentMetrics metrics() const override { return outcomes_.Snapshot(); }

 private:
  std::shared_ptr<Fetcher> fetcher_;
  KeyExtractor<K> key_extractor_;
  Applier<V> applier_;
  EnrichmentOutcomes outcomes_;
};

// `fetcher` is any object with `absl::StatusOr<V> Fetch(const K&)`, e.g. a cache chain.
template <typename K, typename V, typename Fetcher>
absl::StatusOr<std::shared_ptr<MessageEnricher>> MakeEnricher(std::shared_ptr<Fetcher> fetcher,
                                                              KeyExtractor<K> key_extractor,
                                                              Applier<V> applier,
                                                              EnricherOptions options = {}) {
  static_assert(
      std::is_same_v<decltype(fetcher->Fetch(std::declval<const K&>())), absl::StatusOr<V>>,
      "the fetcher must have `absl::StatusOr<V> Fetch(const K&)`");
  if (!fetcher) return absl::InvalidArgumentError("enricher: fetcher is null");
  if (!key_extractor) return absl::InvalidArgumentError("enricher: key extractor is null");
  if (!applier) return absl::InvalidArgumentError("enricher: applier is null");
  return std::shared_ptr<MessageEnricher>(std::make_shared<FetchingEnricher<K, V, Fetcher>>(
      std::move(fetcher), std::move(key_extractor), std::move(applier), options));
}

// The key from an attribute (the original uses the device id attribute).
KeyExtractor<std::string> AttributeKey(std::string attribute);
// The key from a top-level string field of a JSON payload; no key if the payload is not JSON
// within messagepipeline's default JsonLimits (64 levels, 64 MiB). PayloadPathKey (keys.h)
// with a one-member path.
KeyExtractor<std::string> JsonPayloadKey(std::string field);

// Merges the JSON form of a value (nlohmann `to_json`) into `enrichment_data`; a value that
// is not a JSON object is stored under `field`.
template <typename V>
Applier<V> JsonApplier(std::string field = "enrichment") {
  return [field = std::move(field)](messagepipeline::Message& message, const V& value) {
    nlohmann::json j = value;
    auto& data = message.data.enrichment_data;
    if (!data.is_object()) data = nlohmann::json::object();
    if (j.is_object()) {
      data.update(j);
    } else {
      data[field] = std::move(j);
    }
  };
}

}  // namespace dataflow::enrichment
