// uring_backend_test.cpp — the io_uring backend when the kernel refuses a
// submission: the thread that reaps completions must never wait for a drain
// only it could do, and nothing that was refused may be lost.
//
// IOCP idea shown: a completion port promises that every started operation
// completes exactly once and that a worker waiting for completions always
// gets them. On io_uring, starting an operation is itself a request to the
// kernel (a submission), and older kernels (Linux 5.x) refused submissions
// with EBUSY while completions overflowed the completion queue — until the
// program drained it. The backend restarts short sends from the reaping
// thread; had it waited there for the refusal to end, it would have waited
// for itself.
//
// Newer kernels (this machine's 6.x included) keep overflowed completions
// and accept the submission anyway, so the refusal cannot be produced by the
// kernel here. These tests therefore use open_uring_port_for_test (a test
// seam in common/src/backends.hpp): a tiny ring (4 SQ slots, 8 CQ slots)
// whose submissions are answered as Linux 5.x answered them — overflowed
// completions are moved into the CQ if they fit, and the submission is
// refused with EBUSY if some are left. The overflow itself is real: the
// tests start more operations than the CQ holds, all completing at once.
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "backends.hpp"
#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/socket.hpp"
#include "port_fixture.hpp"

#ifdef IOCP_CHAT_HAVE_URING

namespace iocp_chat {
namespace {

using testing_support::kCompletionDeadline;

/// SQ slots of the test ring; its CQ has twice as many.
constexpr unsigned kEntries = 4;
/// CQ slots of the test ring.
constexpr unsigned kCqEntries = 2 * kEntries;
/// The key of the socket under test; posted completions use small numbers.
constexpr CompletionKey kSendKey = 1000;
/// The key of the extra pairs' sockets, whose receives complete at once.
constexpr CompletionKey kReceiveKey = 2000;
/// Far more than a Unix socket's buffer holds, so the first sendmsg is short.
constexpr std::size_t kSendBytes = std::size_t{8} << 20;

/// Everything a scenario touches, shared with its thread: if the port hangs,
/// the thread is left behind and keeps this alive (it can never be joined).
struct Scenario {
  std::unique_ptr<CompletionPort> port;  ///< The test ring.
  Socket ours;                           ///< Associated with the port (kSendKey).
  Socket peer;                           ///< The other end; read only when the test says so.
  SendOperation send;                    ///< The short send the reaper must restart.
  /// Extra connected pairs (ours, peer), each with one byte waiting for ours.
  std::vector<std::pair<Socket, Socket>> extra;
  /// One receive per extra pair; each completes at once with that byte.
  std::vector<std::unique_ptr<ReceiveOperation>> receives;
  std::set<CompletionKey> seen;   ///< The posted completions received so far.
  std::set<Operation*> received;  ///< The receives completed so far.
  bool send_done = false;         ///< The send's completion was received.
};

/// Runs `body` on its own thread; false if it has not returned within twice
/// the completion deadline (so a wait inside `body` ends and reports first;
/// the deadline only stops a stuck test, it is no speed limit). A thread
/// that does not return is left running: it holds its Scenario.
bool returns(std::function<void()> body) {
  std::packaged_task<void()> task(std::move(body));
  std::future<void> done = task.get_future();
  std::thread thread(std::move(task));
  if (done.wait_for(2 * kCompletionDeadline) != std::future_status::ready) {
    thread.detach();
    return false;
  }
  thread.join();
  done.get();
  return true;
}

/// A connected Unix stream pair.
std::pair<Socket, Socket> socket_pair() {
  int fds[2];
  EXPECT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  return {Socket(fds[0]), Socket(fds[1])};
}

/// Opens the test ring, the pair for the send and `extra` pairs with a byte
/// each to receive; null, with the reason in `why`, where io_uring cannot start.
std::shared_ptr<Scenario> open_scenario(std::string& why, std::size_t extra = 0) {
  auto scenario = std::make_shared<Scenario>();
  try {
    scenario->port = detail::open_uring_port_for_test(kEntries);
  } catch (const std::system_error& error) {
    why = error.what();
    return nullptr;
  }
  std::tie(scenario->ours, scenario->peer) = socket_pair();
  scenario->port->associate(scenario->ours, kSendKey);
  for (std::size_t i = 0; i < extra; ++i) {
    auto& [ours, peer] = scenario->extra.emplace_back(socket_pair());
    scenario->port->associate(ours, kReceiveKey);
    EXPECT_FALSE(send_all(peer, "!"));
    scenario->receives.push_back(std::make_unique<ReceiveOperation>());
  }
  scenario->send.set(make_shared_buffer(std::vector<std::byte>(kSendBytes, std::byte{'x'})));
  return scenario;
}

/// Reads everything the peer is sent until the end of the stream; returns the byte count.
std::size_t read_to_end(const Socket& socket) {
  std::vector<std::byte> buffer(64 * 1024);
  std::size_t total = 0;
  for (;;) {
    std::error_code error;
    const std::size_t got = receive_some(socket, buffer, error);
    if (got == 0 || error) return total;
    total += got;
  }
}

/// Collects completions until every posted key in [1, posts], every
/// receive and the send have been seen; fails on a duplicate, a wrong
/// result, or a wait that ends empty. The peer is read meanwhile, so the
/// send can finish.
void drain(Scenario& scenario, std::size_t posts) {
  std::set<CompletionKey>& seen = scenario.seen;
  bool& send_done = scenario.send_done;
  auto missing = [&] {
    return seen.size() < posts || scenario.received.size() < scenario.receives.size() || !send_done;
  };
  std::size_t peer_bytes = 0;
  std::thread reader([&] { peer_bytes = read_to_end(scenario.peer); });
  std::vector<Completion> batch(3);
  while (missing()) {
    const std::size_t count = scenario.port->wait_many(batch, kCompletionDeadline);
    if (count == 0) {
      ADD_FAILURE() << "no completion within the deadline: " << seen.size() << " of " << posts
                    << " posted ones seen, " << scenario.received.size() << " of " << scenario.receives.size()
                    << " receives, send " << (send_done ? "done" : "missing");
      break;
    }
    for (std::size_t i = 0; i < count; ++i) {
      const Completion& completion = batch[i];
      if (completion.kind() == OperationKind::posted) {
        EXPECT_TRUE(seen.insert(completion.key).second) << "posted completion " << completion.key << " twice";
      } else if (completion.kind() == OperationKind::receive) {
        EXPECT_EQ(completion.key, kReceiveKey);
        EXPECT_TRUE(scenario.received.insert(completion.operation).second) << "a receive completed twice";
        EXPECT_FALSE(completion.error) << completion.error.message();
        EXPECT_EQ(completion.bytes, 1U);
      } else {
        EXPECT_EQ(completion.operation, &scenario.send);
        EXPECT_FALSE(send_done) << "the send completed twice";
        EXPECT_FALSE(completion.error) << completion.error.message();
        EXPECT_EQ(completion.bytes, kSendBytes);
        send_done = true;
      }
    }
  }
  ::shutdown(scenario.ours.native(), SHUT_WR);  // the reader's end of stream
  reader.join();
  EXPECT_EQ(peer_bytes, kSendBytes);
}

// The defect: the reaper restarted a short send before marking the CQEs it
// had peeked at as seen, and when the (emulated) kernel refused the restart
// it slept and retried for ever — waiting for a drain only it could do.
// Here the refusal outlasts the CQE it marks seen: several completions
// overflow at once, and freeing one slot lets only one of them in.
TEST(UringBackendTest, ReaperRestartsAShortSendWithoutWaitingForItsOwnDrain) {
  std::string why;
  const auto scenario = open_scenario(why, kEntries);
  if (!scenario) GTEST_SKIP() << "io_uring cannot start here: " << why;

  // The send goes first: the peer reads nothing, so sendmsg writes what the
  // socket buffer holds and completes short — the reaper must restart it.
  scenario->port->start_send(scenario->ours, scenario->send);
  // The send's CQE and kCqEntries - 1 posted NOPs fill the CQ.
  for (CompletionKey key = 1; key < kCqEntries; ++key) scenario->port->post(key);
  // kEntries receives whose byte is already there, handed to the kernel in
  // one submission (a batch): their kEntries CQEs all overflow together.
  scenario->port->begin_batch();
  for (std::size_t i = 0; i < kEntries; ++i) {
    scenario->port->start_receive(scenario->extra[i].first, *scenario->receives[i]);
  }
  scenario->port->end_batch();

  // One completion per wait: the reaper takes the send's CQE alone and
  // restarts it while the kernel still refuses submissions.
  const bool reaped = returns([scenario] {
    Completion completion;
    while (scenario->port->wait_many(std::span(&completion, 1), kCompletionDeadline) == 1) {
      if (completion.kind() == OperationKind::posted) {
        scenario->seen.insert(completion.key);
        return;
      }
    }
  });
  ASSERT_TRUE(reaped) << "the reaping thread is stuck restarting the short send (it waits for itself)";

  drain(*scenario, kCqEntries - 1);
}

// While the kernel refuses, starts and posts must neither block nor be
// lost: what does not fit in the SQ waits in the port, and the next
// submission — or the reaper before it sleeps in the kernel — hands it over.
TEST(UringBackendTest, RefusedSubmissionsWaitInThePortAndTheReaperHandsThemOver) {
  std::string why;
  const auto scenario = open_scenario(why);
  if (!scenario) GTEST_SKIP() << "io_uring cannot start here: " << why;

  // kCqEntries + 1 NOPs fill the CQ and overflow one; from then on every
  // submission is refused until the CQ is drained. 3 × kEntries more posts
  // fill the SQ and then wait in the port; the send started last waits too.
  constexpr std::size_t kPosts = kCqEntries + 1 + 3 * kEntries;
  const bool started = returns([scenario] {
    for (CompletionKey key = 1; key <= kPosts; ++key) scenario->port->post(key);
    scenario->port->start_send(scenario->ours, scenario->send);
  });
  ASSERT_TRUE(started) << "a post or start blocked while the kernel refused submissions";

  // Draining (3 per wait) lets the kernel accept again. The last refused
  // ones are handed over only by the reaper itself, before it would sleep in
  // the kernel: nobody else submits any more. Every completion exactly once.
  const bool drained = returns([scenario] { drain(*scenario, kPosts); });
  ASSERT_TRUE(drained) << "draining the port hung";
  EXPECT_EQ(scenario->seen.size(), kPosts);
  EXPECT_TRUE(scenario->send_done);
}

}  // namespace
}  // namespace iocp_chat

#endif  // IOCP_CHAT_HAVE_URING
