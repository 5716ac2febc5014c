// Archives messages from the in-process broker into gzip JSONL files grouped by day and
// location, then reads one back. Exits non-zero if anything is missing.
#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <thread>

#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/in_process_broker.h"

namespace ice = dataflow::icestore;
namespace mp = dataflow::messagepipeline;

int main() {
  const auto root =
      std::filesystem::temp_directory_path() / ("icestore-example-" + std::to_string(::getpid()));
  auto broker = mp::InProcessBroker::Create();
  if (!broker->CreateTopic("enriched").ok() ||
      !broker->CreateSubscription("archive", "enriched").ok()) {
    return 1;
  }
  auto consumer = broker->NewConsumer("archive");
  auto uploader = ice::LocalDirectoryUploader::Create({.root = root.string(), .prefix = "raw"});
  if (!consumer.ok() || !uploader.ok()) return 1;
  auto service = ice::IceStorageService::Create(
      {.batcher = {.batch_size = 50, .flush_interval = std::chrono::seconds(5)}}, *consumer,
      std::move(*uploader));
  if (!service.ok()) {
    std::cerr << service.status() << "\n";
    return 1;
  }
  if (!(*service)->Start().ok()) return 1;
  const mp::Clock::time_point now = mp::Clock::now();  // one day for all: 2 keys
  for (int i = 0; i < 200; ++i) {
    mp::MessageData data{.id = "reading-" + std::to_string(i),
                         .payload = R"({"temperature":21.5})",
                         .publish_time = now,
                         .enrichment_data = {{"location", i % 2 ? "dublin" : "cork"}}};
    if (!broker->Publish("enriched", std::move(data)).ok()) return 1;
  }
  // Stop drains: every batch is flushed and every message acked or nacked before it returns.
  while ((*service)->metrics().received < 200) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (auto s = (*service)->Stop(std::chrono::seconds(30)); !s.ok()) {
    std::cerr << s << "\n";
    return 1;
  }
  int objects = 0;
  for (const auto& e : std::filesystem::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) {
      ++objects;
      std::cout << std::filesystem::relative(e.path(), root).string() << "\n";
    }
  }
  const auto acked = broker->Stats("archive")->acked;
  std::cout << objects << " objects, " << acked << " messages acked\n";
  std::filesystem::remove_all(root);
  return objects == 4 && acked == 200 ? 0 : 1;  // 2 locations x 100 messages / batches of 50
}
