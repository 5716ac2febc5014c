#include "dataflow/metrics/telemetry.h"

#include <gtest/gtest.h>

#include <atomic>
#include <memory>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace dataflow::metrics {
namespace {

TEST(Telemetry, CountersGaugesAndHistogramsInTheTextFormatExactly) {
  Telemetry telemetry;
  prometheus::Counter& a =
      telemetry.Counter("requests_total", "Requests served.", {{"path", "/a"}});
  telemetry.Gauge("temperature_celsius", "Help with a \\ backslash\nand a newline.", {}).Set(21.5);
  // A second label set of the first family, registered after another family: one family.
  telemetry.Counter("requests_total", "Requests served.", {{"path", "q\"uote\\back\nnl"}})
      .Increment(7);
  a.Increment(3);
  // The same name and labels again: the same counter.
  EXPECT_EQ(&telemetry.Counter("requests_total", "Requests served.", {{"path", "/a"}}), &a);
  prometheus::Histogram& h =
      telemetry.Histogram("latency_seconds", "Latency.", {{"svc", "x"}}, {0.005, 0.5, 1});
  h.Observe(0.25);
  h.Observe(1);
  h.Observe(1);
  h.Observe(3);

  EXPECT_EQ(telemetry.Render(), R"(# HELP requests_total Requests served.
# TYPE requests_total counter
requests_total{path="/a"} 3
requests_total{path="q\"uote\\back\nnl"} 7
# HELP temperature_celsius Help with a \\ backslash\nand a newline.
# TYPE temperature_celsius gauge
temperature_celsius 21.5
# HELP latency_seconds Latency.
# TYPE latency_seconds histogram
latency_seconds_count{svc="x"} 4
latency_seconds_sum{svc="x"} 5.25
latency_seconds_bucket{svc="x",le="0.005"} 0
latency_seconds_bucket{svc="x",le="0.5"} 1
latency_seconds_bucket{svc="x",le="1"} 3
latency_seconds_bucket{svc="x",le="+Inf"} 4
)");
  EXPECT_EQ(telemetry.rejected(), 0u);
}

TEST(Telemetry, CallbacksJoinTheRegistrysFamiliesOneHeaderPerName) {
  Telemetry telemetry;
  telemetry.Counter("x_total", "X.", {{"s", "a"}}).Increment();
  telemetry.AddCallback([](ScrapeWriter& out) { out.Counter("x_total", "X.", {{"s", "b"}}, 5); });
  const auto y = telemetry.AddCallback([](ScrapeWriter& out) { out.Gauge("y", "Y.", {}, 2); });
  telemetry.AddCallback([](ScrapeWriter& out) { out.Counter("x_total", "X.", {{"s", "c"}}, 6); });
  EXPECT_EQ(telemetry.Render(), R"(# HELP x_total X.
# TYPE x_total counter
x_total{s="a"} 1
x_total{s="b"} 5
x_total{s="c"} 6
# HELP y Y.
# TYPE y gauge
y 2
)");
  telemetry.RemoveCallback(y);
  EXPECT_EQ(telemetry.Render().find("# TYPE y"), std::string::npos);
  EXPECT_EQ(telemetry.rejected(), 0u);
}

TEST(Telemetry, ARegistrationRemovesItsCallbackWhenItGoes) {
  Telemetry telemetry;
  Registration kept = telemetry.Register([](ScrapeWriter& out) { out.Gauge("kept", "K.", {}, 1); });
  {
    Registration scoped =
        telemetry.Register([](ScrapeWriter& out) { out.Gauge("scoped", "S.", {}, 2); });
    EXPECT_TRUE(scoped.active());
    EXPECT_NE(telemetry.Render().find("scoped 2\n"), std::string::npos);
  }
  EXPECT_EQ(telemetry.Render().find("scoped"), std::string::npos);
  // Moved: the callback stays until the new owner goes; assigning over it removes it.
  Registration moved = std::move(kept);
  EXPECT_FALSE(kept.active());  // NOLINT(bugprone-use-after-move): moved-from is empty
  EXPECT_TRUE(moved.active());
  EXPECT_NE(telemetry.Render().find("kept 1\n"), std::string::npos);
  moved = telemetry.Register([](ScrapeWriter& out) { out.Gauge("other", "O.", {}, 3); });
  const std::string text = telemetry.Render();
  EXPECT_EQ(text.find("kept"), std::string::npos) << text;
  EXPECT_NE(text.find("other 3\n"), std::string::npos) << text;
  moved.Reset();
  EXPECT_EQ(telemetry.Render(), "");
}

TEST(Telemetry, ARegistrationMayOutliveItsTelemetry) {
  Registration registration;
  {
    Telemetry telemetry;
    registration = telemetry.Register([](ScrapeWriter& out) { out.Gauge("g", "G.", {}, 1); });
    EXPECT_TRUE(registration.active());
  }
  EXPECT_FALSE(registration.active());
  registration.Reset();  // nothing left to remove, and no crash
}

// A callback that owns a component which registered itself: the Telemetry's destructor
// destroys the callback, the component's Registration removes itself, and nothing deadlocks.
TEST(Telemetry, ACallbackMayOwnAComponentHoldingARegistration) {
  struct Component {
    Registration registration;
  };
  auto telemetry = std::make_unique<Telemetry>();
  auto component = std::make_shared<Component>();
  component->registration =
      telemetry->Register([](ScrapeWriter& out) { out.Gauge("component", "C.", {}, 1); });
  telemetry->AddCallback([component](ScrapeWriter& out) { out.Gauge("owner", "O.", {}, 1); });
  component.reset();
  EXPECT_NE(telemetry->Render().find("component 1\n"), std::string::npos);
  telemetry.reset();
}

// Removal waits for a scrape in progress: once the Registration is gone its callback is not
// running, so the component it points at may go next.
TEST(Telemetry, ARegistrationGoesOnlyOnceAScrapeUsingItEnded) {
  Telemetry telemetry;
  std::atomic<bool> in_callback{false};
  std::atomic<bool> release{false};
  std::atomic<bool> callback_done{false};
  auto registration = std::make_unique<Registration>(telemetry.Register([&](ScrapeWriter& out) {
    in_callback = true;
    while (!release) std::this_thread::yield();
    out.Gauge("slow", "S.", {}, 1);
    callback_done = true;
  }));
  std::thread scrape([&] { (void)telemetry.Render(); });
  while (!in_callback) std::this_thread::yield();
  std::thread remove([&] {
    registration.reset();
    EXPECT_TRUE(callback_done.load());
  });
  release = true;
  remove.join();
  scrape.join();
}

TEST(Telemetry, LargeCountersKeepTheirDigits) {
  Telemetry telemetry;
  telemetry.AddCallback([](ScrapeWriter& out) {
    out.Counter("big_total", "B.", {}, 123456789012.0);
    out.Gauge("small", "S.", {}, 0.0005);
  });
  const std::string text = telemetry.Render();
  EXPECT_NE(text.find("big_total 123456789012\n"), std::string::npos) << text;
  EXPECT_NE(text.find("small 0.0005\n"), std::string::npos) << text;
}

TEST(Telemetry, AThrowingCallbackDoesNotHideTheOthers) {
  Telemetry telemetry;
  telemetry.AddCallback([](ScrapeWriter&) { throw std::runtime_error("service gone"); });
  telemetry.AddCallback([](ScrapeWriter& out) { out.Gauge("still_here", "Yes.", {}, 1); });
  EXPECT_NE(telemetry.Render().find("still_here 1\n"), std::string::npos);
}

TEST(Telemetry, ProgrammingErrorsAreLeftOutAndCounted) {
  Telemetry telemetry;
  // Registrations prometheus-cpp refuses: a detached metric, still usable, never exported.
  telemetry.Counter("bad-name", "B.", {}).Increment();
  telemetry.Counter("ok_total", "O.", {{"__reserved", "x"}}).Increment();
  telemetry.Counter("typed", "T.", {}).Increment();
  telemetry.Gauge("typed", "T.", {{"a", "b"}}).Set(1);  // another type under the same name
  EXPECT_EQ(telemetry.rejected(), 3u);
  // Samples a callback writes wrongly.
  telemetry.AddCallback([](ScrapeWriter& out) {
    out.Counter("9lives", "N.", {}, 1);
    out.Counter("fine_total", "F.", {{"1a", "x"}}, 1);
    out.Gauge("typed", "T.", {{"a", "c"}}, 1);  // the registry has it as a counter
    out.Counter("typed", "T.", {}, 1);          // the registry's label set again
    out.Counter("twice_total", "T.", {{"k", "v"}}, 1);
    out.Counter("twice_total", "T.", {{"k", "v"}}, 2);
  });
  const std::string text = telemetry.Render();
  EXPECT_EQ(telemetry.rejected(), 8u);
  EXPECT_EQ(text, R"(# HELP typed T.
# TYPE typed counter
typed 1
# HELP twice_total T.
# TYPE twice_total counter
twice_total{k="v"} 1
)");
}

TEST(Telemetry, ConcurrentCountingAndScrapingLoseNothing) {
  Telemetry telemetry;
  prometheus::Histogram& h = telemetry.Histogram("h_seconds", "H.", {}, LatencyBuckets());
  constexpr int kThreads = 4;
  constexpr int kPerThread = 20000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      prometheus::Counter& c = telemetry.Counter("c_total", "C.", {});
      for (int i = 0; i < kPerThread; ++i) {
        c.Increment();
        h.Observe(0.002);
      }
    });
  }
  for (int i = 0; i < 50; ++i) (void)telemetry.Collect();
  for (auto& t : threads) t.join();
  const std::string text = telemetry.Render();
  EXPECT_NE(text.find("c_total 80000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_count 80000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_bucket{le=\"0.0025\"} 80000\n"), std::string::npos) << text;
  EXPECT_NE(text.find("h_seconds_bucket{le=\"0.001\"} 0\n"), std::string::npos) << text;
}

TEST(LatencyBuckets, HalfAMillisecondToTenSecondsAscending) {
  const std::vector<double> b = LatencyBuckets();
  ASSERT_FALSE(b.empty());
  EXPECT_EQ(b.front(), 0.0005);
  EXPECT_EQ(b.back(), 10);
  for (std::size_t i = 1; i < b.size(); ++i) EXPECT_LT(b[i - 1], b[i]);
}

}  // namespace
}  // namespace dataflow::metrics
