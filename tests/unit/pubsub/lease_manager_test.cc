// LeaseManager on a fake clock: extensions at half the deadline, the server's answers, and
// leases given up past max_lease_extension. No sleeping, no stub.
#include "lease_manager.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

namespace dataflow::pubsub {
namespace {

using std::chrono::milliseconds;
using std::chrono::minutes;
using std::chrono::seconds;

class LeaseManagerTest : public ::testing::Test {
 protected:
  SteadyClock::time_point t0 = SteadyClock::time_point() + std::chrono::hours(1);
  SteadyClock::time_point now = t0;
  LeaseManager leases{{.ack_deadline = seconds(30),
                       .max_lease_extension = minutes(10),
                       .clock = [this] { return now; }}};

  std::vector<std::string> Extended(const LeaseManager::Due& due) {
    std::vector<std::string> ids;
    for (const auto& l : due.extend) ids.push_back(l.id);
    std::sort(ids.begin(), ids.end());
    return ids;
  }
};

TEST_F(LeaseManagerTest, ExtendsAtHalfTheDeadlineAndAgainHalfADeadlineLater) {
  leases.Add("a", 10);
  now = t0 + seconds(14);
  EXPECT_TRUE(leases.Tick().extend.empty());
  now = t0 + seconds(15);
  auto due = leases.Tick();
  ASSERT_EQ(Extended(due), (std::vector<std::string>{"a"}));
  EXPECT_EQ(due.extend[0].expires, t0 + seconds(30));  // the lease as the server has it
  EXPECT_TRUE(leases.Tick().extend.empty());           // rescheduled, not sent twice
  now = t0 + seconds(30);
  EXPECT_EQ(Extended(leases.Tick()), (std::vector<std::string>{"a"}));
}

TEST_F(LeaseManagerTest, AConfirmedExtensionMovesTheLeasesExpiry) {
  leases.Add("a", 10);
  now = t0 + seconds(15);
  auto due = leases.Tick();
  ASSERT_EQ(due.extend.size(), 1u);
  leases.Apply({.ids = {"a"}, .confirmed = true, .at = t0 + seconds(15)});
  EXPECT_EQ(leases.Find("a")->expires, t0 + seconds(45));
  // Settled now, the ack carries the extended lease (its retries last until then).
  auto settled = leases.Remove("a");
  ASSERT_TRUE(settled.has_value());
  EXPECT_EQ(settled->expires, t0 + seconds(45));
}

TEST_F(LeaseManagerTest, AFailedExtensionIsRetriedAtTheGivenTime) {
  leases.Add("a", 10);
  now = t0 + seconds(15);
  ASSERT_EQ(leases.Tick().extend.size(), 1u);
  leases.Apply({.ids = {"a"}, .confirmed = false, .at = t0 + seconds(16)});
  EXPECT_EQ(leases.Find("a")->expires, t0 + seconds(30));  // unchanged
  now = t0 + milliseconds(15'999);
  EXPECT_TRUE(leases.Tick().extend.empty());
  now = t0 + seconds(16);
  EXPECT_EQ(Extended(leases.Tick()), (std::vector<std::string>{"a"}));
}

TEST_F(LeaseManagerTest, LeasesPastMaxLeaseExtensionAreGivenUp) {
  leases.Add("out", 100);
  leases.Add("held", 7);
  ASSERT_TRUE(leases.MarkHandedOut("out"));
  now = t0 + minutes(10);
  auto due = leases.Tick();
  EXPECT_EQ(due.released_messages, 0u);
  EXPECT_EQ(leases.size(), 2u);
  now = t0 + minutes(10) + milliseconds(1);
  due = leases.Tick();
  EXPECT_TRUE(due.extend.empty());
  // Only the handed-out one was counted by flow control.
  EXPECT_EQ(due.released_messages, 1u);
  EXPECT_EQ(due.released_bytes, 100u);
  EXPECT_EQ(leases.size(), 0u);
  // A later settle of a given-up copy finds nothing.
  EXPECT_FALSE(leases.Remove("out").has_value());
  EXPECT_FALSE(leases.MarkHandedOut("held"));
}

TEST_F(LeaseManagerTest, RemoveReturnsTheLeaseOnce) {
  leases.Add("a", 42);
  ASSERT_TRUE(leases.MarkHandedOut("a"));
  auto lease = leases.Remove("a");
  ASSERT_TRUE(lease.has_value());
  EXPECT_TRUE(lease->handed_out);
  EXPECT_EQ(lease->bytes, 42u);
  EXPECT_EQ(lease->expires, t0 + seconds(30));
  EXPECT_FALSE(leases.Remove("a").has_value());
}

TEST_F(LeaseManagerTest, TakeAllEmptiesTheLeases) {
  leases.Add("a", 1);
  leases.Add("b", 1);
  auto all = leases.TakeAll();
  ASSERT_EQ(all.size(), 2u);
  EXPECT_EQ(leases.size(), 0u);
  EXPECT_TRUE(leases.Tick().extend.empty());
}

}  // namespace
}  // namespace dataflow::pubsub
