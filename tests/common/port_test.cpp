// port_test.cpp — the completion queue itself, without sockets: posted
// completions (PostQueuedCompletionStatus) reach exactly one of many waiting
// workers (GetQueuedCompletionStatus), batches work, and workers can be
// woken and stopped — on every backend; and the bounded pool that lends
// receives their buffers.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <thread>
#include <vector>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/receive_buffer_pool.hpp"
#include "port_fixture.hpp"

namespace iocp_chat {
namespace {

using testing_support::PortTest;
using namespace std::chrono_literals;

/// The key a test posts to tell a worker to return.
constexpr CompletionKey kQuitKey = ~CompletionKey{0};

TEST_P(PortTest, PostedCompletionCarriesKeyAndBytes) {
  port_->post(42, 7);
  const Completion completion = next_completion();
  EXPECT_EQ(completion.key, 42U);
  EXPECT_EQ(completion.bytes, 7U);
  EXPECT_EQ(completion.operation, nullptr);
  EXPECT_EQ(completion.kind(), OperationKind::posted);
  EXPECT_FALSE(completion.error);
}

TEST_P(PortTest, WaitTimesOutWhenNothingIsQueued) {
  EXPECT_FALSE(port_->wait(20ms).has_value());
  EXPECT_FALSE(port_->wait(0ms).has_value());
}

TEST_P(PortTest, FullWidthKeysSurvive) {
  // The original cast its key to a 32-bit DWORD; a ULONG_PTR keeps all 64 bits.
  const CompletionKey wide = ~CompletionKey{0} - 1;
  port_->post(wide);
  EXPECT_EQ(next_completion().key, wide);
}

TEST_P(PortTest, EachPostedCompletionReachesExactlyOneOfManyWorkers) {
  constexpr int kProducers = 4;
  constexpr int kWorkers = 4;
  constexpr int kPerProducer = 5000;
  std::vector<std::atomic<int>> seen(kProducers * kPerProducer);
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      for (;;) {
        auto completion = port_->wait(testing_support::kCompletionDeadline);
        if (!completion || completion->key == kQuitKey) return;
        seen[completion->key].fetch_add(1);
      }
    });
  }
  std::vector<std::thread> producers;
  for (int p = 0; p < kProducers; ++p) {
    producers.emplace_back([&, p] {
      for (int i = 0; i < kPerProducer; ++i) port_->post(static_cast<CompletionKey>(p * kPerProducer + i));
    });
  }
  for (auto& producer : producers) producer.join();
  for (int w = 0; w < kWorkers; ++w) port_->post(kQuitKey);
  for (auto& worker : workers) worker.join();

  int wrong = 0;
  for (const auto& count : seen) wrong += count.load() == 1 ? 0 : 1;
  EXPECT_EQ(wrong, 0) << "completions delivered zero or several times";
}

TEST_P(PortTest, WaitManyDequeuesABatch) {
  for (CompletionKey key = 1; key <= 10; ++key) port_->post(key);
  std::vector<Completion> batch(16);
  std::vector<bool> seen(11, false);
  std::size_t total = 0;
  while (total < 10) {
    const std::size_t count = port_->wait_many(batch, testing_support::kCompletionDeadline);
    ASSERT_GT(count, 0U);
    for (std::size_t i = 0; i < count; ++i) {
      ASSERT_LE(batch[i].key, 10U);
      EXPECT_FALSE(seen[batch[i].key]);
      seen[batch[i].key] = true;
    }
    total += count;
  }
  EXPECT_EQ(total, 10U);
  EXPECT_FALSE(port_->wait(0ms).has_value());
}

TEST_P(PortTest, OneQuitCompletionPerWorkerStopsThemAll) {
  constexpr int kWorkers = 6;
  std::atomic<int> stopped{0};
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&] {
      // Blocks forever, as a server's worker does, until told to quit.
      while (port_->wait(kWaitForever)->key != kQuitKey) {
      }
      stopped.fetch_add(1);
    });
  }
  std::this_thread::sleep_for(50ms);  // let them block (the test passes either way)
  for (int w = 0; w < kWorkers; ++w) port_->post(kQuitKey);
  for (auto& worker : workers) worker.join();
  EXPECT_EQ(stopped.load(), kWorkers);
}

// The pool keeps at most kMaxSpare buffers; the rest go back to the heap,
// so a burst of receives leaves at most 1 MiB behind.
TEST(ReceiveBufferPool, KeepsAtMostItsBoundOfSpareBuffers) {
  ReceiveBufferPool& pool = ReceiveBufferPool::shared();
  const std::size_t lent_before = pool.lent();
  std::vector<std::byte*> taken;
  for (std::size_t i = 0; i < ReceiveBufferPool::kMaxSpare + 10; ++i) {
    taken.push_back(pool.take(ReceiveBufferPool::kBufferSize));
  }
  EXPECT_EQ(pool.lent(), lent_before + taken.size());
  for (std::byte* buffer : taken) pool.give_back(buffer, ReceiveBufferPool::kBufferSize);
  EXPECT_EQ(pool.lent(), lent_before);
  EXPECT_EQ(pool.spare(), ReceiveBufferPool::kMaxSpare);
  std::byte* odd = pool.take(100);  // another size: straight from the heap, never kept
  pool.give_back(odd, 100);
  EXPECT_EQ(pool.spare(), ReceiveBufferPool::kMaxSpare);
}

INSTANTIATE_TEST_SUITE_P(Backends, PortTest, ::testing::ValuesIn(compiled_backends()),
                         testing_support::backend_name);

TEST(BackendChoice, NamesRoundTrip) {
  for (const Backend backend : {Backend::automatic, Backend::iocp, Backend::uring, Backend::epoll}) {
    EXPECT_EQ(parse_backend(to_string(backend)), backend);
  }
  EXPECT_FALSE(parse_backend("kqueue").has_value());
  EXPECT_FALSE(parse_backend("").has_value());
}

TEST(BackendChoice, AutoPicksACompiledBackendAndSaysWhich) {
  NetworkSession network;
  std::string note;
  const auto port = open_completion_port(Backend::automatic, &note);
  const auto compiled = compiled_backends();
  EXPECT_NE(std::find(compiled.begin(), compiled.end(), port->backend()), compiled.end());
  EXPECT_NE(note.find(to_string(port->backend())), std::string::npos) << note;
}

TEST(BackendChoice, AMissingBackendIsAClearError) {
  NetworkSession network;
#ifdef _WIN32
  const Backend missing = Backend::epoll;
#else
  const Backend missing = Backend::iocp;
#endif
  try {
    open_completion_port(missing);
    FAIL() << "expected std::system_error";
  } catch (const std::system_error& error) {
    EXPECT_NE(std::string(error.what()).find("not available"), std::string::npos) << error.what();
  }
}

}  // namespace
}  // namespace iocp_chat
