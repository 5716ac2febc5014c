// The small interfaces between the Pub/Sub clients and the network: SubscriberStub (the
// consumer), PublisherStub (the producer), AdminStub (admin.h), and PubsubStub, all three. The gRPC
// implementation talks to Google or the emulator; tests plug in a fake, and retries/logging can be
// decorators around it. Implementations are thread-safe; a PullStream is used by one reader and one
// writer thread at a time, and Cancel() may be called from any thread.
#pragma once

#include <chrono>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "dataflow/gcp/channel.h"
#include "google/pubsub/v1/pubsub.pb.h"

namespace dataflow::pubsub {

namespace v1 = ::google::pubsub::v1;

class PullStream {
 public:
  virtual ~PullStream() = default;
  virtual bool Write(const v1::StreamingPullRequest& request) = 0;
  // False once the stream ended; then Finish() says why.
  virtual bool Read(v1::StreamingPullResponse* response) = 0;
  // Half-closes the stream: the server then ends it (Read() returns false) once it has sent
  // what it had in flight. False if that is not possible; the caller cancels instead.
  virtual bool WritesDone() { return false; }
  // Ends the stream from another thread; a blocked Read() returns false.
  virtual void Cancel() = 0;
  virtual absl::Status Finish() = 0;
};

// The calls a subscriber makes (GooglePubsubConsumer).
class SubscriberStub {
 public:
  virtual ~SubscriberStub() = default;
  virtual absl::Status Acknowledge(const v1::AcknowledgeRequest& request) = 0;
  virtual absl::Status ModifyAckDeadline(const v1::ModifyAckDeadlineRequest& request) = 0;
  // A stream with a gRPC deadline `timeout` from now (none when zero): past it the stream
  // ends with DEADLINE_EXCEEDED, on the server too, even if this process died meanwhile.
  virtual std::unique_ptr<PullStream> StreamingPull(std::chrono::milliseconds timeout) = 0;
  virtual absl::StatusOr<v1::Subscription> GetSubscription(const std::string& name) = 0;
};

// The calls a publisher makes (GooglePubsubProducer).
class PublisherStub {
 public:
  virtual ~PublisherStub() = default;
  virtual absl::StatusOr<v1::PublishResponse> Publish(const v1::PublishRequest& request,
                                                      std::chrono::milliseconds timeout) = 0;
};

// Topic and subscription administration (admin.h).
class AdminStub {
 public:
  virtual ~AdminStub() = default;
  virtual absl::StatusOr<v1::Topic> CreateTopic(const v1::Topic& topic) = 0;
  virtual absl::Status DeleteTopic(const std::string& topic) = 0;
  virtual absl::StatusOr<v1::Subscription> CreateSubscription(const v1::Subscription& s) = 0;
  virtual absl::Status DeleteSubscription(const std::string& name) = 0;
};

// All three, as one connection serves them: what MakePubsubStub returns.
class PubsubStub : public SubscriberStub, public PublisherStub, public AdminStub {};

// The gRPC stub over `channel`.
std::shared_ptr<PubsubStub> MakeGrpcPubsubStub(std::shared_ptr<grpc::Channel> channel);

// A channel to pubsub.googleapis.com:443 with Google default credentials, or to
// $PUBSUB_EMULATOR_HOST when set, or to `options.endpoint`; then the gRPC stub.
// (default_endpoint and emulator_host_env are filled in when empty.)
absl::StatusOr<std::shared_ptr<PubsubStub>> MakePubsubStub(gcp::ChannelOptions options = {});

// "projects/p/topics/t" and "projects/p/subscriptions/s".
std::string TopicName(const std::string& project, const std::string& topic);
std::string SubscriptionName(const std::string& project, const std::string& subscription);

}  // namespace dataflow::pubsub
