// epoll_backend_test.cpp — the epoll backend when re-arming a socket fails:
// the pending operations must complete with the error, not wait for ever.
//
// IOCP idea shown: every started operation completes exactly once — also
// when the machinery underneath fails. The epoll backend keeps each socket
// registered EPOLLONESHOT and re-arms it (EPOLL_CTL_MOD) for what its
// pending operations wait for; if that call fails, epoll will never report
// the socket again, so the operations are completed with the error at once.
//
// The failure is made deterministic by replacing the socket's descriptor
// behind the port's back: dup2 puts another file under the same number, the
// socket's own file is closed (which removes it from epoll), and the next
// EPOLL_CTL_MOD on that number fails with ENOENT.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <unistd.h>

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/socket.hpp"
#include "port_fixture.hpp"

namespace iocp_chat {
namespace {

using testing_support::kCompletionDeadline;
using namespace std::chrono_literals;

/// The key of the socket under test.
constexpr CompletionKey kKey = 7;

/// An epoll port and a connected Unix stream pair, `ours` associated with it.
class EpollBackendTest : public ::testing::Test {
 protected:
  void SetUp() override {
    port_ = open_completion_port(Backend::epoll);
    int fds[2];
    ASSERT_EQ(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
    ours_ = Socket(fds[0]);
    peer_ = Socket(fds[1]);
    port_->associate(ours_, kKey);
  }

  void TearDown() override { port_->close(ours_); }

  /// Closes the socket's file behind the port's back, keeping its number
  /// taken by /dev/null: the port's next EPOLL_CTL_MOD on it fails (ENOENT).
  void replace_descriptor_behind_the_port() {
    const int null = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(null, 0);
    ASSERT_EQ(::dup2(null, ours_.native()), ours_.native());
    ::close(null);
  }

  /// The next completion, or a test failure if none arrives by the deadline.
  std::optional<Completion> next_completion() {
    auto completion = port_->wait(kCompletionDeadline);
    if (!completion) ADD_FAILURE() << "no completion within " << kCompletionDeadline.count() << " ms";
    return completion;
  }

  std::unique_ptr<CompletionPort> port_;  ///< The epoll backend.
  Socket ours_;                           ///< Associated with port_ (kKey).
  Socket peer_;                           ///< The other end.
};

TEST_F(EpollBackendTest, AFailedRearmCompletesThePendingReceiveWithTheError) {
  replace_descriptor_behind_the_port();
  ReceiveOperation receive;
  port_->start_receive(ours_, receive);  // arms the socket: EPOLL_CTL_MOD fails

  const std::optional<Completion> completion = next_completion();
  ASSERT_TRUE(completion);
  EXPECT_EQ(completion->operation, &receive);
  EXPECT_EQ(completion->key, kKey);
  EXPECT_EQ(completion->bytes, 0U);
  EXPECT_TRUE(completion->error) << "the receive must fail, not look like a peer that closed";
  EXPECT_FALSE(port_->wait(0ms)) << "exactly one completion per started operation";
}

TEST_F(EpollBackendTest, AFailedRearmCompletesEveryPendingOperationOnce) {
  // A send the peer does not read: what the socket buffer holds is written
  // at once, the rest waits for EPOLLOUT (armed while the socket was intact).
  SendOperation send;
  send.set(make_shared_buffer(std::vector<std::byte>(std::size_t{8} << 20, std::byte{'x'})));
  port_->start_send(ours_, send);
  ASSERT_FALSE(port_->wait(0ms)) << "the send should be waiting for room, not complete";

  replace_descriptor_behind_the_port();
  ReceiveOperation receive;
  port_->start_receive(ours_, receive);  // re-arms for both: EPOLL_CTL_MOD fails

  std::set<Operation*> completed;
  for (int i = 0; i < 2; ++i) {
    const std::optional<Completion> completion = next_completion();
    ASSERT_TRUE(completion);
    EXPECT_EQ(completion->key, kKey);
    EXPECT_TRUE(completion->error) << "operation " << completion->operation << " did not fail";
    EXPECT_TRUE(completed.insert(completion->operation).second) << "an operation completed twice";
    if (completion->operation == &send) {
      EXPECT_GT(completion->bytes, 0U);  // what was written before the failure
      EXPECT_LT(completion->bytes, send.size());
    }
  }
  EXPECT_EQ(completed, (std::set<Operation*>{&send, &receive}));
  EXPECT_FALSE(port_->wait(0ms)) << "exactly one completion per started operation";
}

}  // namespace
}  // namespace iocp_chat
