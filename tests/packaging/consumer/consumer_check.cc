// Links the mqttconverter component and reads the generated version header.
#include <cstdio>
#include <cstring>

#include "dataflow/mqttconverter/mqtt_config.h"
#include "dataflow/version.h"

int main(int argc, char** argv) {
  if (argc > 1 && std::strcmp(argv[1], DATAFLOW_VERSION) != 0) {
    std::fprintf(stderr, "version.h says %s, expected %s\n", DATAFLOW_VERSION, argv[1]);
    return 1;
  }
  if (!dataflow::mqttconverter::TopicMatches("devices/+/telemetry", "devices/d1/telemetry") ||
      dataflow::mqttconverter::TopicMatches("devices/+/telemetry", "devices/d1/alerts")) {
    std::fprintf(stderr, "TopicMatches gave a wrong answer\n");
    return 1;
  }
  std::printf("consumer_check: dataflow %s ok\n", DATAFLOW_VERSION);
  return 0;
}
