// Topic and subscription administration for tests, the demo and users' tooling.
// Free functions over an AdminStub (a PubsubStub is one); thread-safe.
#pragma once

#include <chrono>
#include <string>

#include "absl/status/status.h"
#include "dataflow/pubsub/pubsub_stub.h"

namespace dataflow::pubsub {

struct SubscriptionOptions {
  std::chrono::seconds ack_deadline{10};  // Pub/Sub accepts 10..600 s
  bool enable_message_ordering = false;
};

// ALREADY_EXISTS is reported as such, so callers can decide whether that is fine.
absl::Status CreateTopic(AdminStub& stub, const std::string& project, const std::string& topic);
absl::Status DeleteTopic(AdminStub& stub, const std::string& project, const std::string& topic);
absl::Status CreateSubscription(AdminStub& stub, const std::string& project,
                                const std::string& subscription, const std::string& topic,
                                const SubscriptionOptions& options = {});
absl::Status DeleteSubscription(AdminStub& stub, const std::string& project,
                                const std::string& subscription);

// Create unless it exists: OK when the topic or subscription is there afterwards (an existing
// subscription keeps its settings).
absl::Status EnsureTopic(AdminStub& stub, const std::string& project, const std::string& topic);
absl::Status EnsureSubscription(AdminStub& stub, const std::string& project,
                                const std::string& subscription, const std::string& topic,
                                const SubscriptionOptions& options = {});

}  // namespace dataflow::pubsub
