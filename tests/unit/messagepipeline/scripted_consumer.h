// A MessageConsumer for tests: messages are fed by the test, and every Ack/Nack is recorded
// per message id, so tests can assert exactly how each message was settled.
#pragma once

#include <future>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "dataflow/messagepipeline/consumer.h"
#include "dataflow/messagepipeline/dead_letter.h"

namespace dataflow::messagepipeline::testing {

enum class Outcome { kPending, kAcked, kNacked };

class ScriptedConsumer : public MessageConsumer {
 public:
  explicit ScriptedConsumer(std::size_t capacity = 10000)
      : channel_(capacity), done_(promise_.get_future().share()) {}

  // Queues a message; blocks if the channel is full (like a real consumer).
  void Feed(const std::string& id, std::string payload, int delivery_attempt = 1,
            Attributes attributes = {}) {
    {
      std::lock_guard lock(mu_);
      outcomes_[id] = Outcome::kPending;
      settle_calls_[id] = 0;
    }
    MessageData data{.id = id, .payload = std::move(payload)};
    Message m(std::move(data), std::move(attributes),
              MakeAckHandler([this, id] { Record(id, Outcome::kAcked); },
                             [this, id] { Record(id, Outcome::kNacked); }));
    m.delivery_attempt = delivery_attempt;
    if (!channel_.Push(std::move(m))) m.Nack();
  }

  absl::Status Start() override {
    std::lock_guard lock(mu_);
    ++starts_;
    return start_error_;
  }
  absl::Status Stop(Deadline) override {
    channel_.Close();
    std::lock_guard lock(mu_);
    if (!stopped_) promise_.set_value(absl::OkStatus());
    stopped_ = true;
    return absl::OkStatus();
  }
  BoundedQueue<Message>& Messages() override { return channel_; }
  std::shared_future<absl::Status> Done() override { return done_; }

  void FailStartWith(absl::Status s) {
    std::lock_guard lock(mu_);
    start_error_ = std::move(s);
  }
  Outcome outcome(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = outcomes_.find(id);
    return it == outcomes_.end() ? Outcome::kPending : it->second;
  }
  // How many times the handle of `id` was called: settle-once means at most 1.
  int settle_calls(const std::string& id) const {
    std::lock_guard lock(mu_);
    auto it = settle_calls_.find(id);
    return it == settle_calls_.end() ? 0 : it->second;
  }
  std::size_t count(Outcome o) const {
    std::lock_guard lock(mu_);
    std::size_t n = 0;
    for (const auto& [id, outcome] : outcomes_) n += outcome == o ? 1 : 0;
    return n;
  }
  int starts() const {
    std::lock_guard lock(mu_);
    return starts_;
  }

 private:
  void Record(const std::string& id, Outcome o) {
    std::lock_guard lock(mu_);
    outcomes_[id] = o;
    ++settle_calls_[id];
  }

  BoundedQueue<Message> channel_;
  std::promise<absl::Status> promise_;
  std::shared_future<absl::Status> done_;
  mutable std::mutex mu_;
  std::map<std::string, Outcome> outcomes_;
  std::map<std::string, int> settle_calls_;
  absl::Status start_error_;
  bool stopped_ = false;
  int starts_ = 0;
};

// A dead-letter sink that keeps what it was sent.
class RecordingDeadLetterSink : public DeadLetterSink {
 public:
  struct Letter {
    std::string id;
    std::string payload;
    Attributes attributes;
  };
  absl::Status Send(const Message& message, const absl::Status& reason,
                    std::string_view source) override {
    std::lock_guard lock(mu_);
    if (!fail_with_.ok()) return fail_with_;
    letters_.push_back(
        {message.data.id, message.data.payload, DeadLetterAttributes(message, reason, source)});
    return absl::OkStatus();
  }
  void FailWith(absl::Status s) {
    std::lock_guard lock(mu_);
    fail_with_ = std::move(s);
  }
  std::vector<Letter> letters() const {
    std::lock_guard lock(mu_);
    return letters_;
  }

 private:
  mutable std::mutex mu_;
  std::vector<Letter> letters_;
  absl::Status fail_with_;
};

}  // namespace dataflow::messagepipeline::testing
