// The archive service's family: exported under its name, for as long as the service exists.
#include "dataflow/icestore/icestore_metrics.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "dataflow/icestore/ice_storage_service.h"
#include "dataflow/icestore/local_directory_uploader.h"
#include "dataflow/messagepipeline/in_process_broker.h"
#include "dataflow/metrics/telemetry.h"
#include "dataflow_testing/metrics_fields.h"

namespace dataflow::icestore {
namespace {

TEST(IceStoreMetrics, ObjectsWrittenIsExported) {
  testing::ExpectEveryValueExported({1024}, [](metrics::ScrapeWriter& out) {
    WriteIceStoreMetrics(out, {{"service", "s"}}, 1024);
  });
}

TEST(IceStoreMetrics, AServiceExportsItsCountUntilItIsDestroyed) {
  auto broker = messagepipeline::InProcessBroker::Create();
  ASSERT_TRUE(broker->CreateTopic("t").ok());
  ASSERT_TRUE(broker->CreateSubscription("s", "t").ok());
  const auto dir = std::filesystem::temp_directory_path() /
                   ("icestore_metrics_test_" + std::to_string(::getpid()));
  auto uploader = LocalDirectoryUploader::Create({.root = dir.string(), .prefix = "ice"});
  ASSERT_TRUE(uploader.ok()) << uploader.status();
  auto service = IceStorageService::Create({}, *broker->NewConsumer("s"), *std::move(uploader));
  ASSERT_TRUE(service.ok()) << service.status();
  metrics::Telemetry telemetry;
  (*service)->RegisterMetrics(telemetry, {{"service", "icestore"}});
  const std::string text = telemetry.Render();
  EXPECT_NE(text.find("# HELP dataflow_archive_objects_written_total Archive objects written.\n"
                      "# TYPE dataflow_archive_objects_written_total counter\n"
                      "dataflow_archive_objects_written_total{service=\"icestore\"} 0\n"),
            std::string::npos)
      << text;
  service->reset();
  EXPECT_EQ(telemetry.Render().find("dataflow_archive_"), std::string::npos);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace dataflow::icestore
