// socket_io_test.cpp — overlapped socket operations through the completion
// port on 127.0.0.1, on every backend: AcceptEx-style accepts (several
// pre-posted), a 1 MiB transfer in both directions (sends completed whole), peer
// close as a 0-byte receive, an idle receive holding no buffer, a reset as an error, cancellation of pending
// operations and of operations started after the cancel, and 500
// connections served by worker threads at once.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/receive_buffer_pool.hpp"
#include "iocp_chat/socket.hpp"
#include "port_fixture.hpp"

namespace iocp_chat {
namespace {

using testing_support::PortTest;

constexpr CompletionKey kListenerKey = 1;
constexpr CompletionKey kConnectionKey = 2;

/// Deterministic pseudo-random bytes, so a corrupted transfer is detected.
std::vector<std::byte> make_pattern(std::size_t size, unsigned seed) {
  std::vector<std::byte> bytes(size);
  std::mt19937 random(seed);
  for (auto& byte : bytes) byte = static_cast<std::byte>(random() & 0xFF);
  return bytes;
}

/// A listener on 127.0.0.1 with an ephemeral port, associated with the port.
class SocketIoTest : public PortTest {
 protected:
  void SetUp() override {
    PortTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    listener_ = open_listener("127.0.0.1", 0);
    port_->associate(listener_, kListenerKey);
  }

  void TearDown() override {
    if (port_ && listener_.is_open()) port_->close(listener_);
  }

  /// Accepts one connection through the port and associates it with kConnectionKey.
  Socket accept_one(Socket& client) {
    AcceptOperation accept;
    port_->start_accept(listener_, accept);
    client = connect_to("127.0.0.1", local_port(listener_));
    const Completion completion = next_completion();
    EXPECT_EQ(completion.operation, &accept);
    EXPECT_EQ(completion.key, kListenerKey);
    EXPECT_FALSE(completion.error) << completion.error.message();
    Socket accepted = accept.take_socket();
    EXPECT_TRUE(accepted.is_open());
    port_->associate(accepted, kConnectionKey);
    return accepted;
  }

  /// The peer closes; `receive`, waiting on `accepted`, reports its FIN as 0
  /// bytes with no error. Then `accepted` is closed.
  void expect_fin_when_peer_closes(Socket& client, Socket& accepted, ReceiveOperation& receive) {
    client.close();
    const Completion end = next_completion();
    EXPECT_EQ(end.operation, &receive);
    EXPECT_FALSE(end.error) << end.error.message();
    EXPECT_EQ(end.bytes, 0U);
    port_->close(accepted);
  }

  Socket listener_;
};

TEST_P(SocketIoTest, AcceptCompletesWithTheNewConnection) {
  Socket client;
  Socket accepted = accept_one(client);
  EXPECT_EQ(local_port(accepted), local_port(listener_));
  port_->close(accepted);
}

TEST_P(SocketIoTest, SeveralPrePostedAcceptsEachTakeOneClient) {
  constexpr int kAccepts = 4;
  std::vector<std::unique_ptr<AcceptOperation>> accepts;
  for (int i = 0; i < kAccepts; ++i) {
    accepts.push_back(std::make_unique<AcceptOperation>());
    port_->start_accept(listener_, *accepts.back());
  }
  std::vector<Socket> clients;
  for (int i = 0; i < kAccepts; ++i) clients.push_back(connect_to("127.0.0.1", local_port(listener_)));

  std::vector<Operation*> completed;
  for (int i = 0; i < kAccepts; ++i) {
    const Completion completion = next_completion();
    ASSERT_EQ(completion.kind(), OperationKind::accept);
    ASSERT_FALSE(completion.error) << completion.error.message();
    completed.push_back(completion.operation);
    Socket accepted = static_cast<AcceptOperation*>(completion.operation)->take_socket();
    EXPECT_TRUE(accepted.is_open());
  }
  std::sort(completed.begin(), completed.end());
  EXPECT_EQ(std::unique(completed.begin(), completed.end()), completed.end()) << "an accept completed twice";
}

TEST_P(SocketIoTest, OneMebibyteSentInPiecesArrivesIdentical) {
  Socket client;
  Socket accepted = accept_one(client);
  const auto pattern = make_pattern(1 << 20, 7);

  std::thread sender([&] {
    std::mt19937 random(11);
    std::size_t offset = 0;
    while (offset < pattern.size()) {
      const std::size_t piece = std::min<std::size_t>(1 + random() % 9000, pattern.size() - offset);
      ASSERT_FALSE(send_all(client, std::span(pattern).subspan(offset, piece)));
      offset += piece;
    }
  });

  ReceiveOperation receive;
  std::vector<std::byte> received;
  while (received.size() < pattern.size()) {
    port_->start_receive(accepted, receive);
    const Completion completion = next_completion();
    ASSERT_EQ(completion.operation, &receive);
    ASSERT_EQ(completion.key, kConnectionKey);
    ASSERT_FALSE(completion.error) << completion.error.message();
    ASSERT_GT(completion.bytes, 0U) << "early end of stream after " << received.size() << " bytes";
    const auto bytes = receive.received(completion.bytes);
    received.insert(received.end(), bytes.begin(), bytes.end());
  }
  sender.join();
  EXPECT_TRUE(received == pattern);
  port_->close(accepted);
}

TEST_P(SocketIoTest, SendOfOneMebibyteCompletesWholeAndArrivesIdentical) {
  Socket client;
  Socket accepted = accept_one(client);
  const auto pattern = make_pattern(1 << 20, 3);

  // 1 MiB in one send: more than the socket buffers hold while the reader
  // has not started, so the backend must finish short sends itself.
  SendOperation send;
  send.set(make_shared_buffer(pattern));
  ASSERT_EQ(send.size(), pattern.size());
  port_->start_send(accepted, send);

  std::vector<std::byte> received;
  std::thread reader([&] {
    std::vector<std::byte> buffer(65536);
    std::error_code error;
    while (received.size() < pattern.size()) {
      const std::size_t count = receive_some(client, buffer, error);
      if (error || count == 0) break;
      received.insert(received.end(), buffer.begin(), buffer.begin() + static_cast<std::ptrdiff_t>(count));
    }
  });
  const Completion completion = next_completion();
  reader.join();
  EXPECT_EQ(completion.operation, &send);
  EXPECT_FALSE(completion.error) << completion.error.message();
  EXPECT_EQ(completion.bytes, pattern.size());
  EXPECT_TRUE(received == pattern);
  port_->close(accepted);
}

TEST_P(SocketIoTest, PeerCloseCompletesAReceiveWithZeroBytes) {
  Socket client;
  Socket accepted = accept_one(client);
  ReceiveOperation receive;
  port_->start_receive(accepted, receive);
  expect_fin_when_peer_closes(client, accepted, receive);
}

// [idle-receive-test]
// The zero-byte receive (issue #15): a receive waiting on a quiet connection
// holds no buffer — none lent by the pool, none in the operation — and data
// that comes after a long silence still arrives whole and in order, with
// bytes > 0 (0 bytes stays the peer's FIN, reported once, at the end).
TEST_P(SocketIoTest, AnIdleReceiveHoldsNoBufferAndLateDataArrivesWhole) {
  Socket client;
  Socket accepted = accept_one(client);
  const ReceiveBufferPool& pool = ReceiveBufferPool::shared();
  const std::size_t lent_before = pool.lent();

  ReceiveOperation receive;
  port_->start_receive(accepted, receive);
  EXPECT_FALSE(port_->wait(std::chrono::milliseconds(500))) << "a completion with nothing sent";
  EXPECT_FALSE(receive.holds_buffer()) << "an idle receive holds a buffer";
  EXPECT_EQ(pool.lent(), lent_before) << "an idle receive borrowed a buffer from the pool";

  const auto pattern = make_pattern(3 * ReceiveOperation::kDefaultCapacity + 123, 15);
  ASSERT_FALSE(send_all(client, pattern));
  std::vector<std::byte> received;
  while (received.size() < pattern.size()) {
    const Completion completion = next_completion();
    ASSERT_EQ(completion.operation, &receive);
    ASSERT_FALSE(completion.error) << completion.error.message();
    ASSERT_GT(completion.bytes, 0U) << "a 0-byte completion (the FIN) after " << received.size() << " bytes";
    EXPECT_TRUE(receive.holds_buffer());
    const auto bytes = receive.received(completion.bytes);
    received.insert(received.end(), bytes.begin(), bytes.end());
    port_->start_receive(accepted, receive);  // gives the buffer back
    EXPECT_FALSE(receive.holds_buffer());
  }
  EXPECT_TRUE(received == pattern);
  EXPECT_EQ(pool.lent(), lent_before) << "the receive waiting again still holds a buffer";
  expect_fin_when_peer_closes(client, accepted, receive);
}

// Many quiet connections, each with a receive waiting: the pool lends nothing.
TEST_P(SocketIoTest, ManyIdleConnectionsBorrowNoBuffers) {
  constexpr int kConnections = 50;
  const std::size_t lent_before = ReceiveBufferPool::shared().lent();
  std::vector<Socket> clients(kConnections);
  std::vector<Socket> accepted;
  std::vector<std::unique_ptr<ReceiveOperation>> receives;
  for (Socket& client : clients) {
    accepted.push_back(accept_one(client));
    receives.push_back(std::make_unique<ReceiveOperation>());
    port_->start_receive(accepted.back(), *receives.back());
  }
  EXPECT_FALSE(port_->wait(std::chrono::milliseconds(200)));
  EXPECT_EQ(ReceiveBufferPool::shared().lent(), lent_before);
  for (Socket& client : clients) client.close();
  for (int i = 0; i < kConnections; ++i) {
    const Completion end = next_completion();
    EXPECT_EQ(end.bytes, 0U);
  }
  for (Socket& socket : accepted) port_->close(socket);
}
// [idle-receive-test]

TEST_P(SocketIoTest, HalfCloseStillDeliversTheDataBeforeTheEnd) {
  Socket client;
  Socket accepted = accept_one(client);
  ASSERT_FALSE(send_all(client, std::string_view("last words")));
  shutdown_send(client);
  ReceiveOperation receive;
  std::string text;
  for (;;) {
    port_->start_receive(accepted, receive);
    const Completion completion = next_completion();
    ASSERT_FALSE(completion.error) << completion.error.message();
    if (completion.bytes == 0) break;
    const auto bytes = receive.received(completion.bytes);
    text.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  }
  EXPECT_EQ(text, "last words");
  port_->close(accepted);
}

TEST_P(SocketIoTest, ResetByPeerCompletesAReceiveWithAnError) {
  Socket client;
  Socket accepted = accept_one(client);
  ReceiveOperation receive;
  port_->start_receive(accepted, receive);
  close_with_reset(client);
  const Completion completion = next_completion();
  EXPECT_EQ(completion.operation, &receive);
  EXPECT_TRUE(completion.error) << "a reset must be an error, got " << completion.bytes << " bytes";
  EXPECT_FALSE(completion.error.message().empty());
  port_->close(accepted);
}

TEST_P(SocketIoTest, CancelCompletesEveryPendingOperationOnce) {
  Socket client;
  Socket accepted = accept_one(client);

  // A receive that no data will satisfy, a send larger than the socket
  // buffers (the client never reads), and an accept no client will take.
  ReceiveOperation receive;
  port_->start_receive(accepted, receive);
  SendOperation send;
  send.set(make_shared_buffer(make_pattern(16 << 20, 5)));
  port_->start_send(accepted, send);
  AcceptOperation accept;
  port_->start_accept(listener_, accept);

  port_->cancel(accepted);
  port_->cancel(listener_);

  std::map<Operation*, int> completions;
  for (int i = 0; i < 3; ++i) {
    const Completion completion = next_completion();
    ASSERT_NE(completion.operation, nullptr);
    ++completions[completion.operation];
    if (completion.operation == &send) {
      EXPECT_TRUE(completion.error) << "a cancelled send cannot succeed";
    }
    if (completion.operation == &accept) {
      EXPECT_TRUE(completion.error) << "a cancelled accept cannot succeed";
      EXPECT_FALSE(accept.take_socket().is_open());
    }
  }
  EXPECT_EQ(completions[&receive], 1);
  EXPECT_EQ(completions[&send], 1);
  EXPECT_EQ(completions[&accept], 1);
  EXPECT_FALSE(port_->wait(std::chrono::milliseconds(50)).has_value()) << "an extra completion arrived";
  port_->close(accepted);
}

// A cancelled receive takes none of the bytes already queued, as a
// cancelled WSARecv does. Had it read them after the shutdown, the close
// would send a FIN instead of a reset, with the window still shut on the
// peer (the kernel does not reopen it once reading is shut down): a peer
// that goes on sending would wait on it for a minute. Unread, the bytes
// make the close a reset, and the peer learns at once. (Found by
// V1Reliability.StopDuringAFullRateBroadcast…/epoll: one run in ~50, under
// load, waited 107 s for a flooder's send.)
TEST_P(SocketIoTest, AReceiveAfterCancelTakesNoneOfTheQueuedBytes) {
  Socket client;
  Socket accepted = accept_one(client);
  const std::vector<std::byte> pattern = make_pattern(16 * 1024, 4);
  ASSERT_FALSE(send_all(client, pattern));
  ASSERT_TRUE(wait_readable(accepted, 20000));  // the bytes are queued on the server's side

  port_->cancel(accepted);
  ReceiveOperation receive;
  port_->start_receive(accepted, receive);
  const Completion completion = next_completion();
  ASSERT_EQ(completion.operation, &receive);
  EXPECT_TRUE(completion.error) << "a receive after cancel() took " << completion.bytes << " queued bytes";
  EXPECT_EQ(completion.bytes, 0U);
  port_->close(accepted);
}

// [cancel-then-start]
// The classic CancelIoEx mistake, forced step by step: a server decides what
// to send under a lock (claim), another thread cancels the connection, and
// only then is the send started. CancelIoEx reaches only operations already
// pending, so on Windows a plain CancelIoEx would miss this send — and with a
// peer that never reads, it would never complete: the connection could never
// be freed. The contract (completion_port.hpp) says cancel() also covers
// operations started after it, so both must complete, at once, with an error.
TEST_P(SocketIoTest, OperationsStartedAfterCancelCompleteAtOnce) {
  Socket client;  // never reads: a send that really started would wait for ever
  Socket accepted = accept_one(client);

  SendOperation send;
  send.set(make_shared_buffer(make_pattern(64 << 20, 9)));  // far more than any socket buffer
  port_->cancel(accepted);
  port_->start_send(accepted, send);
  ReceiveOperation receive;
  port_->start_receive(accepted, receive);

  std::map<Operation*, int> completions;
  for (int i = 0; i < 2; ++i) {
    const Completion completion = next_completion();
    ASSERT_NE(completion.operation, nullptr) << "an operation started after cancel() never completed";
    ++completions[completion.operation];
    if (completion.operation == &send) {
      EXPECT_TRUE(completion.error) << "a send started after cancel() cannot succeed";
      EXPECT_LT(completion.bytes, send.size());
    }
    if (completion.operation == &receive) {
      EXPECT_TRUE(completion.error || completion.bytes == 0) << "a receive after cancel() got data";
    }
  }
  EXPECT_EQ(completions[&send], 1);
  EXPECT_EQ(completions[&receive], 1);
  port_->close(accepted);
}
// [cancel-then-start]

/// A multi-threaded echo server on the port: the smallest complete use of
/// the layer, with one connection object per accepted socket.
class EchoServer {
 public:
  EchoServer(CompletionPort& port, Socket& listener, int workers, int pre_posted_accepts)
      : port_(port), listener_(listener) {
    for (int i = 0; i < pre_posted_accepts; ++i) {
      accepts_.push_back(std::make_unique<AcceptOperation>());
      outstanding_.fetch_add(1);
      port_.start_accept(listener_, *accepts_.back());
    }
    for (int i = 0; i < workers; ++i) threads_.emplace_back([this] { run(); });
  }

  /// Cancels everything, waits for every operation to complete, and joins.
  ~EchoServer() {
    stopping_.store(true);
    port_.cancel(listener_);
    {
      const std::lock_guard lock(mutex_);
      for (auto& [key, connection] : connections_) port_.cancel(connection->socket);
    }
    for (std::size_t i = 0; i < threads_.size(); ++i) port_.post(kStopKey);
    for (auto& thread : threads_) thread.join();
    // Drain what the workers left, so no operation is destroyed while pending.
    while (outstanding_.load() > 0) {
      auto completion = port_.wait(testing_support::kCompletionDeadline);
      if (!completion) break;
      handle(*completion);
    }
  }

  std::atomic<int> served{0};  ///< Connections that ended normally.

 private:
  static constexpr CompletionKey kStopKey = 0;

  struct Connection {
    Socket socket;
    ReceiveOperation receive{1024};
    SendOperation send;
  };

  void run() {
    for (;;) {
      auto completion = port_.wait(kWaitForever);
      if (completion->kind() == OperationKind::posted) return;
      handle(*completion);
    }
  }

  void handle(const Completion& completion) {
    if (completion.kind() == OperationKind::accept) {
      auto* accept = static_cast<AcceptOperation*>(completion.operation);
      if (completion.error || stopping_.load()) {  // cancelled: not re-posted
        outstanding_.fetch_sub(1);
        return;
      }
      auto connection = std::make_unique<Connection>();
      connection->socket = accept->take_socket();
      Connection* raw = connection.get();
      const auto key = reinterpret_cast<CompletionKey>(raw);
      {
        const std::lock_guard lock(mutex_);
        connections_[key] = std::move(connection);
      }
      port_.associate(raw->socket, key);
      outstanding_.fetch_add(1);
      port_.start_receive(raw->socket, raw->receive);
      port_.start_accept(listener_, *accept);
      return;
    }
    auto* connection = reinterpret_cast<Connection*>(completion.key);
    if (completion.kind() == OperationKind::receive && !completion.error && completion.bytes > 0) {
      connection->send.clear();
      connection->send.set(make_shared_buffer(connection->receive.received(completion.bytes)));
      port_.start_send(connection->socket, connection->send);
      return;
    }
    if (completion.kind() == OperationKind::send && !completion.error) {
      port_.start_receive(connection->socket, connection->receive);
      return;
    }
    // End of stream or an error: this was the connection's only operation.
    if (!completion.error) served.fetch_add(1);
    const std::lock_guard lock(mutex_);
    port_.close(connection->socket);
    connections_.erase(completion.key);
    outstanding_.fetch_sub(1);
  }

  CompletionPort& port_;
  Socket& listener_;
  std::vector<std::unique_ptr<AcceptOperation>> accepts_;
  std::vector<std::thread> threads_;
  std::mutex mutex_;
  std::map<CompletionKey, std::unique_ptr<Connection>> connections_;
  std::atomic<int> outstanding_{0};  ///< Pending accepts plus open connections.
  std::atomic<bool> stopping_{false};
};

TEST_P(SocketIoTest, FiveHundredConnectionsEchoConcurrently) {
  constexpr int kClients = 500;
  EchoServer server(*port_, listener_, 4, 16);

  std::vector<Socket> clients;
  for (int i = 0; i < kClients; ++i) clients.push_back(connect_to("127.0.0.1", local_port(listener_)));
  for (int i = 0; i < kClients; ++i) {
    ASSERT_FALSE(send_all(clients[static_cast<std::size_t>(i)], "client " + std::to_string(i) + "\n"));
  }
  int correct = 0;
  for (int i = 0; i < kClients; ++i) {
    const std::string expected = "client " + std::to_string(i) + "\n";
    std::string echoed;
    std::vector<std::byte> buffer(256);
    std::error_code error;
    while (echoed.size() < expected.size()) {
      ASSERT_TRUE(wait_readable(clients[static_cast<std::size_t>(i)], 20000))
          << "client " << i << " got no echo";
      const std::size_t count = receive_some(clients[static_cast<std::size_t>(i)], buffer, error);
      if (error || count == 0) break;
      echoed.append(reinterpret_cast<const char*>(buffer.data()), count);
    }
    correct += echoed == expected ? 1 : 0;
  }
  EXPECT_EQ(correct, kClients);

  for (auto& client : clients) shutdown_send(client);
  // Each client then sees the server close its side: read to end of stream.
  for (auto& client : clients) {
    std::vector<std::byte> buffer(64);
    std::error_code error;
    ASSERT_TRUE(wait_readable(client, 20000));
    EXPECT_EQ(receive_some(client, buffer, error), 0U);
  }
  EXPECT_EQ(server.served.load(), kClients);
}

INSTANTIATE_TEST_SUITE_P(Backends, SocketIoTest, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

}  // namespace
}  // namespace iocp_chat
