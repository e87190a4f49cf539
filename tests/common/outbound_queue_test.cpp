// outbound_queue_test.cpp — the two-buffer outbound queue: bytes appended
// while a send is in flight wait for the next send, in order; the bound's
// measure counts both; an idle queue holds no memory; every queue counts
// in the server-wide total.
#include "iocp_chat/outbound_queue.hpp"

#include <gtest/gtest.h>

#include <string>
#include <string_view>

namespace iocp_chat {
namespace {

std::span<const std::byte> bytes_of(std::string_view text) { return std::as_bytes(std::span(text)); }

/// What a send operation holds, as text.
std::string text_of(const SendOperation& send) {
  const std::span<const std::byte> bytes = send.unsent();
  return {reinterpret_cast<const char*>(bytes.data()), bytes.size()};
}

TEST(OutboundQueueTest, BytesAppendedDuringASendWaitForTheNextOneInOrder) {
  OutboundQueue queue;
  SendOperation send;
  EXPECT_FALSE(queue.has_pending());
  queue.append(bytes_of("one "));
  queue.append(bytes_of("two "));
  ASSERT_TRUE(queue.has_pending());
  queue.start_send(send);
  EXPECT_EQ(text_of(send), "one two ");
  EXPECT_TRUE(queue.in_flight());
  EXPECT_FALSE(queue.has_pending());

  queue.append(bytes_of("three"));  // while "one two " is in flight
  EXPECT_EQ(text_of(send), "one two ") << "the buffer in flight must not change";
  EXPECT_EQ(queue.size(), 13U) << "the bound counts pending and in-flight bytes";

  queue.send_completed(send);
  EXPECT_FALSE(queue.in_flight());
  EXPECT_EQ(queue.size(), 5U);
  queue.start_send(send);
  EXPECT_EQ(text_of(send), "three");
}

TEST(OutboundQueueTest, DropPendingKeepsWhatIsInFlight) {
  OutboundQueue queue;
  SendOperation send;
  queue.append(bytes_of("sent"));
  queue.start_send(send);
  queue.append(bytes_of("dropped"));
  queue.drop_pending();
  EXPECT_FALSE(queue.has_pending());
  EXPECT_EQ(queue.size(), 4U);
  EXPECT_EQ(text_of(send), "sent");
  queue.send_completed(send);
  EXPECT_EQ(queue.size(), 0U);
}

TEST(OutboundQueueTest, ACompletedSendWithNothingPendingLeavesTheQueueEmpty) {
  OutboundQueue queue;
  SendOperation send;
  queue.append(bytes_of("hello"));
  queue.start_send(send);
  queue.send_completed(send);
  EXPECT_TRUE(send.empty()) << "the operation lets go of the buffer";
  EXPECT_EQ(queue.size(), 0U);
  EXPECT_FALSE(queue.has_pending());
  EXPECT_FALSE(queue.in_flight());
  // And it is usable again.
  queue.append(bytes_of("again"));
  queue.start_send(send);
  EXPECT_EQ(text_of(send), "again");
}

// A busy connection reuses its buffers send after send (no allocation, and
// with large blocks mapped from the OS no munmap, per send); one that stayed
// idle from one sweep to the next holds none.
TEST(OutboundQueueTest, ABusyQueueKeepsItsBuffersAndAnIdleOneGivesThemBackAtTheSweep) {
  OutboundQueue queue;
  SendOperation send;
  const std::string frames(3000, 'f');
  queue.append(bytes_of(frames));
  queue.start_send(send);
  queue.append(bytes_of(frames));  // into the other buffer, while the first is in flight
  queue.send_completed(send);
  const std::size_t held = queue.held_bytes();
  EXPECT_GE(held, 2 * frames.size()) << "both buffers are kept while the connection is busy";
  queue.start_send(send);  // the second buffer; nothing is pending after it
  queue.send_completed(send);
  EXPECT_EQ(queue.held_bytes(), held) << "an empty queue keeps its buffers until the sweep";
  queue.append(bytes_of(frames));
  queue.start_send(send);
  queue.send_completed(send);
  EXPECT_EQ(queue.held_bytes(), held) << "the next sends reuse them: nothing grew or was allocated";

  queue.release_if_idle();  // the sweep: used since the last one, so kept
  EXPECT_EQ(queue.held_bytes(), held);
  queue.release_if_idle();  // the next sweep: idle all along
  EXPECT_EQ(queue.held_bytes(), 0U) << "an idle connection holds no outbound buffer";
  queue.append(bytes_of("again"));  // and it is usable again
  queue.start_send(send);
  EXPECT_EQ(text_of(send), "again");
}

TEST(OutboundQueueTest, EveryQueueCountsItsBytesInTheServersTotal) {
  OutboundTotal total(100);
  SendOperation send;
  {
    OutboundQueue first(&total);
    OutboundQueue second(&total);
    first.append(bytes_of("0123456789"));
    second.append(bytes_of("abcde"));
    EXPECT_EQ(total.bytes(), 15U);
    first.start_send(send);
    first.append(bytes_of("xyz"));  // pending while the first ten are in flight
    EXPECT_EQ(total.bytes(), 18U) << "in-flight bytes still count";
    first.send_completed(send);
    EXPECT_EQ(total.bytes(), 8U) << "sent bytes stop counting";
    second.drop_pending();
    EXPECT_EQ(total.bytes(), 3U) << "dropped bytes stop counting";
    EXPECT_FALSE(total.over());
    const std::string large(200, 'z');
    second.append(bytes_of(large));
    EXPECT_TRUE(total.over());
  }
  EXPECT_EQ(total.bytes(), 0U) << "a queue that goes away takes its bytes with it";
}

TEST(OutboundQueueTest, TheDefaultTotalBoundFitsTheMachine) {
  const std::size_t bound = default_total_queue_bytes();
  EXPECT_GE(bound, std::size_t{64} << 20);
  EXPECT_LE(bound, std::size_t{1} << 30);
}

}  // namespace
}  // namespace iocp_chat
