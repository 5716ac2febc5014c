#include "dataflow/pubsub/pubsub_stub.h"

#include <grpcpp/client_context.h>

#include <utility>

#include "dataflow/gcp/status.h"
#include "google/pubsub/v1/pubsub.grpc.pb.h"

namespace dataflow::pubsub {
namespace {

using gcp::FromGrpcStatus;

class GrpcPullStream : public PullStream {
 public:
  GrpcPullStream(v1::Subscriber::Stub& stub, std::chrono::milliseconds timeout) {
    if (timeout.count() > 0) context_.set_deadline(std::chrono::system_clock::now() + timeout);
    stream_ = stub.StreamingPull(&context_);
  }
  bool Write(const v1::StreamingPullRequest& request) override { return stream_->Write(request); }
  bool Read(v1::StreamingPullResponse* response) override { return stream_->Read(response); }
  void Cancel() override { context_.TryCancel(); }
  bool WritesDone() override { return stream_->WritesDone(); }
  absl::Status Finish() override { return FromGrpcStatus(stream_->Finish(), "StreamingPull"); }

 private:
  grpc::ClientContext context_;
  std::unique_ptr<grpc::ClientReaderWriter<v1::StreamingPullRequest, v1::StreamingPullResponse>>
      stream_;
};

// Unary calls get a deadline so a dead peer cannot hang a flush or an admin call forever.
void SetTimeout(grpc::ClientContext& ctx, std::chrono::milliseconds timeout) {
  ctx.set_deadline(std::chrono::system_clock::now() + timeout);
}
constexpr std::chrono::seconds kUnaryTimeout(30);

class GrpcPubsubStub : public PubsubStub {
 public:
  explicit GrpcPubsubStub(std::shared_ptr<grpc::Channel> channel)
      : publisher_(v1::Publisher::NewStub(channel)),
        subscriber_(v1::Subscriber::NewStub(channel)) {}

  absl::StatusOr<v1::PublishResponse> Publish(const v1::PublishRequest& request,
                                              std::chrono::milliseconds timeout) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, timeout);
    v1::PublishResponse response;
    auto s = publisher_->Publish(&ctx, request, &response);
    if (!s.ok()) return FromGrpcStatus(s, "Publish");
    return response;
  }
  absl::Status Acknowledge(const v1::AcknowledgeRequest& request) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, kUnaryTimeout);
    google::protobuf::Empty empty;
    return FromGrpcStatus(subscriber_->Acknowledge(&ctx, request, &empty), "Acknowledge");
  }
  absl::Status ModifyAckDeadline(const v1::ModifyAckDeadlineRequest& request) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, kUnaryTimeout);
    google::protobuf::Empty empty;
    return FromGrpcStatus(subscriber_->ModifyAckDeadline(&ctx, request, &empty),
                          "ModifyAckDeadline");
  }
  std::unique_ptr<PullStream> StreamingPull(std::chrono::milliseconds timeout) override {
    return std::make_unique<GrpcPullStream>(*subscriber_, timeout);
  }
  absl::StatusOr<v1::Topic> CreateTopic(const v1::Topic& topic) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, kUnaryTimeout);
    v1::Topic out;
    auto s = publisher_->CreateTopic(&ctx, topic, &out);
    if (!s.ok()) return FromGrpcStatus(s, "CreateTopic " + topic.name());
    return out;
  }
  absl::Status DeleteTopic(const std::string& topic) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, kUnaryTimeout);
    v1::DeleteTopicRequest request;
    request.set_topic(topic);
    google::protobuf::Empty empty;
    return FromGrpcStatus(publisher_->DeleteTopic(&ctx, request, &empty), "DeleteTopic " + topic);
  }
  absl::StatusOr<v1::Subscription> CreateSubscription(const v1::Subscription& sub) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, kUnaryTimeout);
    v1::Subscription out;
    auto s = subscriber_->CreateSubscription(&ctx, sub, &out);
    if (!s.ok()) return FromGrpcStatus(s, "CreateSubscription " + sub.name());
    return out;
  }
  absl::StatusOr<v1::Subscription> GetSubscription(const std::string& name) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, kUnaryTimeout);
    v1::GetSubscriptionRequest request;
    request.set_subscription(name);
    v1::Subscription out;
    auto s = subscriber_->GetSubscription(&ctx, request, &out);
    if (!s.ok()) return FromGrpcStatus(s, "GetSubscription " + name);
    return out;
  }
  absl::Status DeleteSubscription(const std::string& name) override {
    grpc::ClientContext ctx;
    SetTimeout(ctx, kUnaryTimeout);
    v1::DeleteSubscriptionRequest request;
    request.set_subscription(name);
    google::protobuf::Empty empty;
    return FromGrpcStatus(subscriber_->DeleteSubscription(&ctx, request, &empty),
                          "DeleteSubscription " + name);
  }

 private:
  std::unique_ptr<v1::Publisher::Stub> publisher_;
  std::unique_ptr<v1::Subscriber::Stub> subscriber_;
};

}  // namespace

std::shared_ptr<PubsubStub> MakeGrpcPubsubStub(std::shared_ptr<grpc::Channel> channel) {
  return std::make_shared<GrpcPubsubStub>(std::move(channel));
}

absl::StatusOr<std::shared_ptr<PubsubStub>> MakePubsubStub(gcp::ChannelOptions options) {
  if (options.default_endpoint.empty()) options.default_endpoint = "pubsub.googleapis.com:443";
  if (options.emulator_host_env.empty()) options.emulator_host_env = "PUBSUB_EMULATOR_HOST";
  auto channel = gcp::MakeChannel(options);
  if (!channel.ok()) return channel.status();
  return MakeGrpcPubsubStub(*std::move(channel));
}

std::string TopicName(const std::string& project, const std::string& topic) {
  return "projects/" + project + "/topics/" + topic;
}
std::string SubscriptionName(const std::string& project, const std::string& subscription) {
  return "projects/" + project + "/subscriptions/" + subscription;
}

}  // namespace dataflow::pubsub
