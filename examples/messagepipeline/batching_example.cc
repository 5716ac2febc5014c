// A batching pipeline: messages are transformed concurrently and handed to a batch
// processor 100 at a time (or every flush interval, and on stop), as a warehouse sink would
// want them. A failed batch is nacked as a whole and redelivered by the broker.
#include <cstdio>

#include "dataflow/messagepipeline/batching_service.h"
#include "dataflow/messagepipeline/in_process_broker.h"

namespace mp = dataflow::messagepipeline;

int main() {
  auto broker = mp::InProcessBroker::Create();
  (void)broker->CreateTopic("events");
  (void)broker->CreateSubscription("events-sub", "events");

  int flushes = 0;
  std::size_t rows = 0;
  bool failed_once = false;
  auto service = mp::BatchingService<std::string>::Create(
      {.common = {.name = "warehouse-sink"},
       .batch_size = 100,
       .flush_interval = std::chrono::seconds(1)},
      *broker->NewConsumer("events-sub"), mp::RawPayloadTransformer,
      [&](std::span<mp::ProcessableItem<std::string>> batch) -> absl::Status {
        if (!failed_once) {  // the first insert fails: every message in it comes back
          failed_once = true;
          return absl::UnavailableError("warehouse briefly unavailable");
        }
        ++flushes;
        rows += batch.size();
        return absl::OkStatus();  // unsettled messages in the batch are acked
      });
  if (!service.ok()) return std::fprintf(stderr, "%s\n", service.status().ToString().c_str()), 1;
  if (!(*service)->Start().ok()) return 1;
  for (int i = 0; i < 250; ++i) {
    (void)broker->Publish("events", {.payload = "event " + std::to_string(i)});
  }
  while (broker->Stats("events-sub")->acked < 250) std::this_thread::yield();
  if (!(*service)->Stop(std::chrono::seconds(10)).ok()) return 1;
  std::printf("stored %zu rows in %d batches; %llu messages were redelivered after the failure\n",
              rows, flushes, static_cast<unsigned long long>(broker->Stats("events-sub")->nacked));
  return rows == 250 ? 0 : 1;
}
