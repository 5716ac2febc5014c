// AckSequencer: PUBACKs (QoS 2: PUBRECs) go out in arrival order, for the acked prefix only;
// a message the pipeline has not settled holds back the ones behind it until it is settled.
#include "ack_sequencer.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include "fake_broker.h"

namespace dataflow::mqttconverter::internal {
namespace {

using testing::Decode;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::Pair;
using State = AckSequencer::State;
constexpr PacketType kPuback = PacketType::kPuback;
constexpr PacketType kPubrec = PacketType::kPubrec;

class AckSequencerTest : public ::testing::Test {
 protected:
  // The acknowledgements (PUBACK/PUBREC, packet id) that settling `seq` released, decoded.
  std::vector<std::pair<PacketType, int>> Settle(std::uint64_t seq, State state = State::kAcked) {
    return Decode(s.Settle(seq, state).bytes);
  }

  AckSequencer s;
};

TEST_F(AckSequencerTest, AcksInOrderGoOutOneByOne) {
  const auto a = s.Track(10, 1);
  const auto b = s.Track(11, 1);
  EXPECT_THAT(Settle(a), ElementsAre(Pair(kPuback, 10)));
  EXPECT_THAT(Settle(b), ElementsAre(Pair(kPuback, 11)));
  EXPECT_EQ(s.unsettled(), 0u);
  EXPECT_EQ(s.unreleased(), 0u);
}

TEST_F(AckSequencerTest, LaterAcksWaitForEarlierMessageThenGoOutInArrivalOrder) {
  const auto a = s.Track(1, 1);
  const auto b = s.Track(2, 2);
  const auto c = s.Track(3, 1);
  EXPECT_THAT(Settle(c), IsEmpty());
  EXPECT_THAT(Settle(b), IsEmpty());
  EXPECT_EQ(s.unsettled(), 1u);
  const auto released = s.Settle(a, State::kAcked);
  EXPECT_EQ(released.count, 3u);
  EXPECT_THAT(Decode(released.bytes),
              ElementsAre(Pair(kPuback, 1), Pair(kPubrec, 2), Pair(kPuback, 3)));
  EXPECT_EQ(s.unreleased(), 0u);
}

// A poison message among good ones: while the pipeline retries it (nacked, still pending),
// the good ones' PUBACKs wait; once the service gives up on it (dead-letter, then ack) they
// all go out at once, in arrival order, and later ones flow again.
TEST_F(AckSequencerTest, PoisonMessageHoldsLaterAcksOnlyUntilItIsSettled) {
  const auto good1 = s.Track(1, 1);
  const auto poison = s.Track(2, 1);
  const auto good2 = s.Track(3, 1);
  const auto good3 = s.Track(4, 1);
  EXPECT_THAT(Settle(good1), ElementsAre(Pair(kPuback, 1)));
  EXPECT_THAT(Settle(good2), IsEmpty());
  EXPECT_THAT(Settle(good3), IsEmpty());
  EXPECT_EQ(s.unreleased(), 3u);
  EXPECT_THAT(Settle(poison), ElementsAre(Pair(kPuback, 2), Pair(kPuback, 3), Pair(kPuback, 4)));
  const auto good4 = s.Track(5, 1);
  EXPECT_THAT(Settle(good4), ElementsAre(Pair(kPuback, 5)));
}

// Abandoned (nacked while stopping) is never acknowledged: the broker keeps it, and the
// messages behind it stay with the broker too.
TEST_F(AckSequencerTest, AbandonedMessageIsNeverAcknowledged) {
  const auto a = s.Track(1, 1);
  const auto b = s.Track(2, 1);
  EXPECT_THAT(Settle(a, State::kAbandoned), IsEmpty());
  EXPECT_THAT(Settle(b), IsEmpty());
  EXPECT_EQ(s.unsettled(), 0u);
  EXPECT_EQ(s.unreleased(), 2u);
}

TEST_F(AckSequencerTest, SettleIsIdempotentAndIgnoresUnknownSequenceNumbers) {
  const auto a = s.Track(1, 1);
  const auto b = s.Track(2, 1);
  EXPECT_EQ(s.Settle(b, State::kAcked).count, 0u);
  EXPECT_EQ(s.Settle(b, State::kAcked).count, 0u);  // again: no double count
  EXPECT_EQ(s.unsettled(), 1u);
  EXPECT_EQ(s.Settle(a, State::kAcked).count, 2u);
  EXPECT_EQ(s.Settle(a, State::kAcked).count, 0u);       // already released
  EXPECT_EQ(s.Settle(a + 99, State::kAcked).count, 0u);  // never tracked
  EXPECT_EQ(s.unsettled(), 0u);
}

}  // namespace
}  // namespace dataflow::mqttconverter::internal
