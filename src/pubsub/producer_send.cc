// Sending one batch: the Publish RPC with retries, and one message at a time when the server
// rejects the whole request for a bad one.
#include "absl/strings/str_cat.h"
#include "dataflow/gcp/status.h"
#include "dataflow/messagepipeline/errors.h"
#include "dataflow/messagepipeline/logging.h"
#include "dataflow/pubsub/producer.h"

namespace dataflow::pubsub {

absl::Status GooglePubsubProducer::Send(Batch& batch) {
  const std::size_t n = batch.items.size();
  absl::Status status = SendRange(batch, 0, n);
  if (status.ok()) return status;
  if (!messagepipeline::IsPermanent(status) || n == 1) {
    for (auto& p : batch.items) p.error = status;
    return status;
  }
  // The server rejects a whole request for one bad message (an attribute value over 1024
  // bytes, ...): send them one at a time so only the bad ones fail. With an ordering key the
  // ones after the first failure are not sent (the key pauses).
  absl::Status first;
  const Key key{batch.topic, batch.ordering_key};
  for (std::size_t i = 0; i < n; ++i) {
    if (!first.ok() && !batch.ordering_key.empty()) {
      batch.items[i].error = PausedError(key, first);
      continue;
    }
    absl::Status one = SendRange(batch, i, i + 1);
    if (one.ok()) continue;
    batch.items[i].error = one;
    if (first.ok()) first = one;
  }
  return first;
}

absl::Status GooglePubsubProducer::SendRange(Batch& batch, std::size_t begin, std::size_t end) {
  const std::size_t n = end - begin;
  v1::PublishRequest request;
  request.set_topic(TopicName(options_.project_id, batch.topic));
  for (auto i = begin; i < end; ++i) *request.add_messages() = batch.items[i].message;
  auto backoff = *messagepipeline::ExponentialBackoff::Create(options_.backoff);
  const auto give_up = std::chrono::steady_clock::now() + options_.retry_timeout;
  absl::Status failure = absl::UnknownError("publish: not attempted");
  while (true) {
    auto response = stub_->Publish(request, options_.publish_timeout);
    if (response.ok()) {
      if (static_cast<std::size_t>(response->message_ids_size()) != n) {
        failure = absl::InternalError(absl::StrCat("publish: server returned ",
                                                   response->message_ids_size(), " ids for ", n,
                                                   " messages"));
        break;
      }
      for (auto i = begin; i < end; ++i) {
        Resolve(batch.items[i], response->message_ids(static_cast<int>(i - begin)));
      }
      return absl::OkStatus();
    }
    failure = response.status();
    if (failure.code() == absl::StatusCode::kInvalidArgument) {
      // The request itself is bad; sending it again cannot help, so services dead-letter it.
      failure = messagepipeline::MarkPermanent(failure);
      break;
    }
    if (!gcp::IsRetryable(failure.code())) break;
    auto delay = backoff.Next();
    if (std::chrono::steady_clock::now() + delay > give_up) break;
    static LogRateLimit limit;
    if (limit.Allow()) {
      Log()->warn("pubsub publish retry topic={} messages={} error={} delay_ms={}", batch.topic, n,
                  failure.ToString(), delay.count());
    }
    std::unique_lock lock(mu_);
    if (cv_.wait_for(lock, delay, [&] { return abort_; })) break;
  }
  static LogRateLimit fail_limit;
  if (fail_limit.Allow()) {
    Log()->error("pubsub publish failed topic={} messages={} error={}", batch.topic, n,
                 failure.ToString());
  }
  return failure;
}

}  // namespace dataflow::pubsub
