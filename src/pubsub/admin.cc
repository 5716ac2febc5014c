#include "dataflow/pubsub/admin.h"

#include "absl/strings/str_cat.h"

namespace dataflow::pubsub {

absl::Status CreateTopic(AdminStub& stub, const std::string& project, const std::string& topic) {
  v1::Topic t;
  t.set_name(TopicName(project, topic));
  return stub.CreateTopic(t).status();
}

absl::Status DeleteTopic(AdminStub& stub, const std::string& project, const std::string& topic) {
  return stub.DeleteTopic(TopicName(project, topic));
}

absl::Status CreateSubscription(AdminStub& stub, const std::string& project,
                                const std::string& subscription, const std::string& topic,
                                const SubscriptionOptions& options) {
  if (options.ack_deadline < std::chrono::seconds(10) ||
      options.ack_deadline > std::chrono::seconds(600)) {
    return absl::InvalidArgumentError(
        absl::StrCat("ack_deadline must be 10..600 s, got ", options.ack_deadline.count()));
  }
  v1::Subscription s;
  s.set_name(SubscriptionName(project, subscription));
  s.set_topic(TopicName(project, topic));
  s.set_ack_deadline_seconds(static_cast<int>(options.ack_deadline.count()));
  s.set_enable_message_ordering(options.enable_message_ordering);
  return stub.CreateSubscription(s).status();
}

absl::Status DeleteSubscription(AdminStub& stub, const std::string& project,
                                const std::string& subscription) {
  return stub.DeleteSubscription(SubscriptionName(project, subscription));
}

absl::Status EnsureTopic(AdminStub& stub, const std::string& project, const std::string& topic) {
  absl::Status s = CreateTopic(stub, project, topic);
  return absl::IsAlreadyExists(s) ? absl::OkStatus() : s;
}

absl::Status EnsureSubscription(AdminStub& stub, const std::string& project,
                                const std::string& subscription, const std::string& topic,
                                const SubscriptionOptions& options) {
  absl::Status s = CreateSubscription(stub, project, subscription, topic, options);
  return absl::IsAlreadyExists(s) ? absl::OkStatus() : s;
}

}  // namespace dataflow::pubsub
