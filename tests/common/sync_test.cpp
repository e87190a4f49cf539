// sync_test.cpp — the two primitives really do what the server relies on:
// InterlockedCounter loses no update, CriticalSection lets one thread in at
// a time. Each test fails if the primitive is replaced by a plain variable.
#include <gtest/gtest.h>

#include <thread>
#include <vector>

#include "iocp_chat/sync.hpp"

namespace iocp_chat {
namespace {

constexpr int kThreads = 8;
constexpr int kIterations = 20000;

// [no-lost-increment]
TEST(InterlockedCounter, ManyThreadsLoseNoIncrement) {
  InterlockedCounter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counter] {
      for (int i = 0; i < kIterations; ++i) counter.increment();
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), std::int64_t{kThreads} * kIterations);
}
// [no-lost-increment]

TEST(InterlockedCounter, IncrementAndDecrementReturnTheNewValue) {
  InterlockedCounter counter(5);
  EXPECT_EQ(counter.increment(), 6);
  EXPECT_EQ(counter.decrement(), 5);
  EXPECT_EQ(counter.add(10), 15);
  EXPECT_EQ(counter.add(-15), 0);
}

TEST(InterlockedCounter, BalancedUpsAndDownsEndAtZero) {
  InterlockedCounter counter;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&counter, t] {
      for (int i = 0; i < kIterations; ++i) {
        if (t % 2 == 0) {
          counter.increment();
        } else {
          counter.decrement();
        }
      }
    });
  }
  for (auto& thread : threads) thread.join();
  EXPECT_EQ(counter.value(), 0);
}

/// A slow read-modify-write: without the lock, another thread runs between
/// the read and the write (the yield invites it) and an update is lost.
struct GuardedTotal {
  CriticalSection lock;
  long total GUARDED_BY(lock) = 0;
  int inside GUARDED_BY(lock) = 0;
  int most_inside GUARDED_BY(lock) = 0;
};

// [one-thread-inside]
TEST(CriticalSection, OnlyOneThreadInsideAtATime) {
  GuardedTotal shared;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&shared] {
      for (int i = 0; i < 2000; ++i) {
        const CriticalSectionLock hold(shared.lock);
        ++shared.inside;
        if (shared.inside > shared.most_inside) shared.most_inside = shared.inside;
        const long before = shared.total;
        std::this_thread::yield();
        shared.total = before + 1;
        --shared.inside;
      }
    });
  }
  for (auto& thread : threads) thread.join();
  const CriticalSectionLock hold(shared.lock);
  EXPECT_EQ(shared.total, long{kThreads} * 2000);
  EXPECT_EQ(shared.most_inside, 1);
}
// [one-thread-inside]

}  // namespace
}  // namespace iocp_chat
