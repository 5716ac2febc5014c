// Helpers for the mqttconverter integration tests: one Mosquitto per test binary, a small
// synchronous Paho publisher, and a bounded wait on a consumer's channel.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "dataflow/messagepipeline/bounded_queue.h"
#include "dataflow/messagepipeline/message.h"
#include "dataflow_testing/mosquitto_server.h"

namespace dataflow::mqttconverter::testing {

// The broker of this test binary, started by MosquittoEnvironment.
inline dataflow::testing::MosquittoServer*& Broker() {
  static dataflow::testing::MosquittoServer* broker = nullptr;
  return broker;
}

class MosquittoEnvironment : public ::testing::Environment {
 public:
  explicit MosquittoEnvironment(dataflow::testing::MosquittoOptions options = {})
      : options_(std::move(options)) {}
  void SetUp() override {
    auto server = dataflow::testing::MosquittoServer::Start(options_);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    Broker() = server_.get();
  }
  void TearDown() override {
    Broker() = nullptr;
    server_.reset();
  }

 private:
  dataflow::testing::MosquittoOptions options_;
  std::unique_ptr<dataflow::testing::MosquittoServer> server_;
};

// A topic prefix no other test uses.
inline std::string UniqueTopic(const std::string& base) {
  static std::atomic<int> n{0};
  const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return base + "/" + (info ? info->name() : "t") + "-" + std::to_string(::getpid()) + "-" +
         std::to_string(n++);
}

// Publishes with the `mosquitto_pub` program. Not an in-process Paho client on purpose:
// Paho C serves every client of a process from one receive thread, so a consumer blocked on
// its full channel (backpressure) would stall an in-process publisher too.
class TestPublisher {
 public:
  // QoS 1 and 2 wait for the broker's acknowledgement before mosquitto_pub exits.
  void Publish(const std::string& topic, const std::string& payload, int qos = 1) {
    const std::string file = WriteTemp(payload);
    Run("-q " + std::to_string(qos) + " -t '" + topic + "' -f '" + file + "'");
    std::remove(file.c_str());
  }
  // One message per line, in order, over one connection.
  void PublishLines(const std::string& topic, const std::vector<std::string>& lines, int qos = 1) {
    std::string all;
    for (const auto& l : lines) all += l + "\n";
    const std::string file = WriteTemp(all);
    Run("-q " + std::to_string(qos) + " -t '" + topic + "' -l < '" + file + "'");
    std::remove(file.c_str());
  }

 private:
  static std::string WriteTemp(const std::string& data) {
    std::string path = (std::filesystem::temp_directory_path() / "dataflow-mqtt-pub-XXXXXX");
    int fd = ::mkstemp(path.data());
    EXPECT_GE(fd, 0);
    std::size_t off = 0;
    while (off < data.size()) {
      ssize_t n = ::write(fd, data.data() + off, data.size() - off);
      if (n <= 0) break;
      off += static_cast<std::size_t>(n);
    }
    ::close(fd);
    return path;
  }
  static void Run(const std::string& args) {
    const std::string cmd =
        "mosquitto_pub -h 127.0.0.1 -p " + std::to_string(Broker()->port()) + " " + args;
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  }
};

// Pops until `n` messages arrived or `timeout` passed; returns what arrived.
inline std::vector<messagepipeline::Message> PopN(
    messagepipeline::BoundedQueue<messagepipeline::Message>& queue, std::size_t n,
    std::chrono::milliseconds timeout = std::chrono::seconds(15)) {
  std::vector<messagepipeline::Message> out;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (out.size() < n && std::chrono::steady_clock::now() < deadline) {
    if (queue.PopBatchUntil(out, n - out.size(), deadline) == 0 && queue.closed_and_empty()) {
      break;
    }
  }
  return out;
}

}  // namespace dataflow::mqttconverter::testing
