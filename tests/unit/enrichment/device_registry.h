// Test helpers shared by the enrichment tests: a device registry in memory (a fetcher that can
// be made to fail like an unreachable backend) and an enricher over it.
#pragma once

#include <gtest/gtest.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "dataflow/enrichment/enricher.h"
#include "dataflow/messagepipeline/message.h"

namespace dataflow::enrichment::test_support {

namespace mp = messagepipeline;

struct Device {
  std::string name;
  std::string location;
  friend bool operator==(const Device&, const Device&) = default;
};
inline void to_json(nlohmann::json& j, const Device& d) {
  j = {{"name", d.name}, {"location", d.location}};
}

// A source of truth in memory, which can be made to fail like an unreachable backend.
class DeviceRegistry {
 public:
  absl::StatusOr<Device> Fetch(const std::string& id) {
    ++calls;
    if (down) return absl::UnavailableError("registry unreachable");
    std::lock_guard lock(mu_);
    auto it = devices_.find(id);
    if (it == devices_.end()) return absl::NotFoundError("no device " + id);
    return it->second;
  }
  void Add(const std::string& id, Device d) {
    std::lock_guard lock(mu_);
    devices_[id] = std::move(d);
  }
  std::atomic<bool> down{false};
  std::atomic<int> calls{0};

 private:
  std::mutex mu_;
  std::map<std::string, Device> devices_;
};

inline mp::Message WithDevice(const std::string& id) {
  return mp::Message(mp::MessageData{.id = "m-" + id, .payload = "{}"}, {{"deviceId", id}});
}

inline std::shared_ptr<MessageEnricher> MakeDeviceEnricher(std::shared_ptr<DeviceRegistry> registry,
                                                           EnricherOptions options = {}) {
  auto enricher = MakeEnricher<std::string, Device>(registry, AttributeKey("deviceId"),
                                                    JsonApplier<Device>(), options);
  EXPECT_TRUE(enricher.ok()) << enricher.status();
  return *enricher;
}

}  // namespace dataflow::enrichment::test_support
