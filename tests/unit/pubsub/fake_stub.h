// FakeStub: an in-memory PubsubStub for the producer and consumer unit tests.
//
// Publish records what it got and can fail (all calls, the first N, or the first N for one
// ordering key). StreamingPull yields the responses queued with Deliver(), then blocks until
// the stream is half-closed or cancelled, unless hang_streams is set: then it blocks until
// Release(); EndStreams() ends the open streams with a status. Acknowledge / ModifyAckDeadline
// record the ids they got and can fail the first N calls or hang until Release(). Thread-safe.
#pragma once

#include <atomic>
#include <condition_variable>
#include <deque>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataflow/pubsub/pubsub_stub.h"

namespace dataflow::pubsub::testing {

class FakeStub : public PubsubStub, public std::enable_shared_from_this<FakeStub> {
 public:
  // Publish fails with `fail_with` for the first `failures` calls.
  absl::StatusCode fail_with = absl::StatusCode::kUnavailable;
  std::atomic<int> failures{0};
  std::atomic<bool> fail_forever{false};
  // Publish fails with `fail_with` for the first `key_failures` calls with this key.
  std::string fail_key;
  std::atomic<int> key_failures{0};

  // Publish rejects a request with an attribute value over 1024 bytes, as Pub/Sub does
  // (INVALID_ARGUMENT for the whole request).
  std::atomic<bool> enforce_attribute_limit{false};

  // Acknowledge / ModifyAckDeadline fail with `settle_fail_with` for the first N calls.
  absl::StatusCode settle_fail_with = absl::StatusCode::kUnavailable;
  std::atomic<int> ack_failures{0};
  std::atomic<int> modack_failures{0};
  std::atomic<bool> ack_fail_forever{false};
  // Until Release(): Acknowledge and ModifyAckDeadline block (hang_settles), and streams
  // ignore half-close and cancel (hang_streams).
  std::atomic<bool> hang_settles{false};
  std::atomic<bool> hang_streams{false};
  // A half-close is counted (writes_done) but does not end the stream, as a server that keeps
  // a half-closed stream open until its deadline.
  std::atomic<bool> ignore_writes_done{false};

  absl::StatusOr<v1::PublishResponse> Publish(const v1::PublishRequest& request,
                                              std::chrono::milliseconds) override {
    const auto& key = request.messages(0).ordering_key();
    {
      std::lock_guard lock(mu);
      ++calls;
      if (!key.empty() && ++in_flight[key] > 1) overlapping = true;
    }
    absl::StatusOr<v1::PublishResponse> out;
    bool too_long = false;
    for (const auto& m : request.messages()) {
      for (const auto& [k, v] : m.attributes()) too_long = too_long || v.size() > 1024;
    }
    if (enforce_attribute_limit && too_long) {
      out = absl::InvalidArgumentError("attribute value too long");
    } else if (fail_forever || failures.fetch_sub(1) > 0 ||
               (!key.empty() && key == fail_key && key_failures.fetch_sub(1) > 0)) {
      out = absl::Status(fail_with, "injected");
    } else {
      v1::PublishResponse r;
      std::lock_guard lock(mu);
      batch_sizes.push_back(request.messages_size());
      for (const auto& m : request.messages()) {
        r.add_message_ids(std::to_string(next_id++));
        order.push_back(m.data());
      }
      out = r;
    }
    std::lock_guard lock(mu);
    if (!key.empty()) --in_flight[key];
    return out;
  }

  absl::Status Acknowledge(const v1::AcknowledgeRequest& request) override {
    std::unique_lock lock(mu);
    ++ack_calls;
    cv.notify_all();
    cv.wait(lock, [&] { return !hang_settles || released; });
    if (ack_fail_forever || ack_failures.fetch_sub(1) > 0) {
      return absl::Status(settle_fail_with, "injected");
    }
    acked.insert(acked.end(), request.ack_ids().begin(), request.ack_ids().end());
    cv.notify_all();
    return {};
  }
  absl::Status ModifyAckDeadline(const v1::ModifyAckDeadlineRequest& request) override {
    std::unique_lock lock(mu);
    ++modack_calls;
    cv.notify_all();
    cv.wait(lock, [&] { return !hang_settles || released; });
    if (modack_failures.fetch_sub(1) > 0) return absl::Status(settle_fail_with, "injected");
    auto& to = request.ack_deadline_seconds() == 0 ? nacked : extended;
    to.insert(to.end(), request.ack_ids().begin(), request.ack_ids().end());
    cv.notify_all();
    return {};
  }

  std::unique_ptr<PullStream> StreamingPull(std::chrono::milliseconds timeout) override {
    {
      std::lock_guard lock(mu);
      stream_timeouts.push_back(timeout);
    }
    return std::make_unique<Stream>(shared_from_this());
  }
  absl::StatusOr<v1::Topic> CreateTopic(const v1::Topic& t) override { return t; }
  absl::Status DeleteTopic(const std::string&) override { return {}; }
  absl::StatusOr<v1::Subscription> CreateSubscription(const v1::Subscription& s) override {
    return s;
  }
  absl::StatusOr<v1::Subscription> GetSubscription(const std::string&) override {
    if (get_subscription_error.code() != absl::StatusCode::kOk) return get_subscription_error;
    return v1::Subscription();
  }
  absl::Status get_subscription_error;  // set before Start
  absl::Status DeleteSubscription(const std::string&) override { return {}; }

  // Queues a response of messages with ack ids "<prefix>0".. and payloads "<prefix>0"..
  // (each `size` bytes long, padded with '.', when size is given).
  void Deliver(const std::string& prefix, int n, std::size_t size = 0) {
    v1::StreamingPullResponse r;
    for (int i = 0; i < n; ++i) {
      auto* rm = r.add_received_messages();
      rm->set_ack_id(prefix + std::to_string(i));
      std::string data = prefix + std::to_string(i);
      if (data.size() < size) data.resize(size, '.');
      rm->mutable_message()->set_data(data);
      rm->mutable_message()->set_message_id(prefix + std::to_string(i));
    }
    std::lock_guard lock(mu);
    responses.push_back(std::move(r));
    cv.notify_all();
  }
  // Queues a response of one message, as a (re)delivery: `ack_id` differs per delivery, the
  // message id does not; `delivery_attempt` is the server's count (0: none).
  void Redeliver(const std::string& message_id, const std::string& ack_id,
                 int delivery_attempt = 0) {
    v1::StreamingPullResponse r;
    auto* rm = r.add_received_messages();
    rm->set_ack_id(ack_id);
    rm->set_delivery_attempt(delivery_attempt);
    rm->mutable_message()->set_data(message_id);
    rm->mutable_message()->set_message_id(message_id);
    std::lock_guard lock(mu);
    responses.push_back(std::move(r));
    cv.notify_all();
  }
  // Ends the streams open now with `status` (Finish() returns it), as the server does at a
  // stream's deadline; responses queued later go to the next stream.
  void EndStreams(absl::Status status) {
    std::lock_guard lock(mu);
    end_status = std::move(status);
    ++end_generation;
    cv.notify_all();
  }
  void Release() {
    std::lock_guard lock(mu);
    released = true;
    cv.notify_all();
  }
  // Waits (bounded, so a broken test fails rather than hangs) for `pred` under the lock.
  template <typename Pred>
  bool Await(Pred pred, std::chrono::seconds timeout = std::chrono::seconds(30)) {
    std::unique_lock lock(mu);
    return cv.wait_for(lock, timeout, pred);
  }

  std::mutex mu;
  std::condition_variable cv;
  int calls = 0;
  int next_id = 1;
  bool overlapping = false;
  std::map<std::string, int> in_flight;
  std::vector<int> batch_sizes;
  std::vector<std::string> order;
  int ack_calls = 0;
  int modack_calls = 0;
  std::vector<std::string> acked;
  std::vector<std::string> nacked;
  std::vector<std::string> extended;
  std::deque<v1::StreamingPullResponse> responses;
  std::vector<std::chrono::milliseconds> stream_timeouts;  // per StreamingPull call
  absl::Status end_status;
  int end_generation = 0;
  int streams_opened = 0;
  int streams_open = 0;
  int writes_done = 0;      // half-closes
  int readers_waiting = 0;  // readers blocked in Read(): their stream is set up and written
  bool released = false;

 private:
  class Stream : public PullStream {
   public:
    explicit Stream(std::shared_ptr<FakeStub> stub) : stub_(std::move(stub)) {
      std::lock_guard lock(stub_->mu);
      generation_ = stub_->end_generation;
      ++stub_->streams_opened;
      ++stub_->streams_open;
      stub_->cv.notify_all();
    }
    ~Stream() override {
      std::lock_guard lock(stub_->mu);
      --stub_->streams_open;
      stub_->cv.notify_all();
    }
    bool Write(const v1::StreamingPullRequest&) override { return true; }
    bool Read(v1::StreamingPullResponse* response) override {
      auto& s = *stub_;
      std::unique_lock lock(s.mu);
      ++s.readers_waiting;
      s.cv.notify_all();
      s.cv.wait(lock, [&] {
        if (s.hang_streams) return s.released;
        return !s.responses.empty() || ended_ || Expired();
      });
      --s.readers_waiting;
      if (Expired()) {
        status_ = s.end_status;
        return false;
      }
      if (s.responses.empty() || ended_) return false;
      *response = std::move(s.responses.front());
      s.responses.pop_front();
      return true;
    }
    bool WritesDone() override {
      {
        std::lock_guard lock(stub_->mu);
        ++stub_->writes_done;
        stub_->cv.notify_all();
      }
      if (stub_->ignore_writes_done) return true;
      return End();
    }
    void Cancel() override { End(); }
    absl::Status Finish() override {
      std::lock_guard lock(stub_->mu);
      return status_;
    }

   private:
    bool Expired() const { return stub_->end_generation != generation_; }  // under mu
    bool End() {
      std::lock_guard lock(stub_->mu);
      ended_ = true;
      stub_->cv.notify_all();
      return true;
    }
    std::shared_ptr<FakeStub> stub_;
    bool ended_ = false;  // guarded by stub_->mu
    int generation_ = 0;
    absl::Status status_;
  };
};

}  // namespace dataflow::pubsub::testing
