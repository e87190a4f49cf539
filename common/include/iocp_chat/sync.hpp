// sync.hpp — the two synchronization primitives of the original program.
//
// IOCP idea: many worker threads dequeue completions at once, so any state
// they share (the client list, the client count) needs protection.
//  * CriticalSection stands for Win32's CRITICAL_SECTION
//    (InitializeCriticalSection / EnterCriticalSection / LeaveCriticalSection):
//    a lock for state that several threads read and change together.
//  * InterlockedCounter stands for InterlockedIncrement / InterlockedDecrement:
//    one number changed atomically without any lock.
// On Windows they are built on those very calls; elsewhere on std::mutex and
// std::atomic. The lock carries clang's thread-safety annotations, so data
// marked GUARDED_BY(lock) cannot be touched without holding it (-Wthread-safety).
#pragma once

#include <cstdint>

#ifdef _WIN32
// WIN32_LEAN_AND_MEAN and NOMINMAX come with iocp_chat::common (common/CMakeLists.txt).
#include <windows.h>
#else
#include <atomic>
#include <mutex>
#endif

// Clang's capability analysis (https://clang.llvm.org/docs/ThreadSafetyAnalysis.html);
// other compilers see empty macros.
#if defined(__clang__)
#define IOCP_CHAT_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define IOCP_CHAT_THREAD_ANNOTATION(x)
#endif
/// Marks a class as a lock that clang's analysis tracks.
#define CAPABILITY(name) IOCP_CHAT_THREAD_ANNOTATION(capability(name))
/// Marks an RAII class that holds a lock for its lifetime.
#define SCOPED_CAPABILITY IOCP_CHAT_THREAD_ANNOTATION(scoped_lockable)
/// The member may be read or written only while holding the named lock.
#define GUARDED_BY(lock) IOCP_CHAT_THREAD_ANNOTATION(guarded_by(lock))
/// The function must be called with the named lock held.
#define REQUIRES(...) IOCP_CHAT_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
/// The function must be called without the named lock held.
#define EXCLUDES(...) IOCP_CHAT_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
/// The function takes the lock and returns holding it.
#define ACQUIRE(...) IOCP_CHAT_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
/// The function releases the lock.
#define RELEASE(...) IOCP_CHAT_THREAD_ANNOTATION(release_capability(__VA_ARGS__))

namespace iocp_chat {

// [critical-section]
/// A lock for shared state (Win32 CRITICAL_SECTION; std::mutex elsewhere).
///
/// The chat server keeps its client list under one of these, as the original
/// did. The rule that the original broke: hold it only to read or change the
/// list, never across a send or any other I/O.
class CAPABILITY("mutex") CriticalSection {
 public:
  /// InitializeCriticalSection.
  CriticalSection() noexcept {
#ifdef _WIN32
    InitializeCriticalSection(&section_);
#endif
  }
  /// DeleteCriticalSection.
  ~CriticalSection() {
#ifdef _WIN32
    DeleteCriticalSection(&section_);
#endif
  }
  CriticalSection(const CriticalSection&) = delete;
  CriticalSection& operator=(const CriticalSection&) = delete;

  /// EnterCriticalSection: blocks until this thread owns the section.
  void enter() ACQUIRE() {
#ifdef _WIN32
    EnterCriticalSection(&section_);
#else
    mutex_.lock();
#endif
  }

  /// LeaveCriticalSection: lets the next waiting thread in.
  void leave() RELEASE() {
#ifdef _WIN32
    LeaveCriticalSection(&section_);
#else
    mutex_.unlock();
#endif
  }

 private:
#ifdef _WIN32
  CRITICAL_SECTION section_;  ///< The Win32 object itself.
#else
  std::mutex mutex_;  ///< The portable equivalent.
#endif
};
// [critical-section]

// [critical-section-lock]
/// Holds a CriticalSection from construction to the end of the scope (RAII),
/// so no early return or exception can leave it entered.
class SCOPED_CAPABILITY CriticalSectionLock {
 public:
  /// Enters the section.
  explicit CriticalSectionLock(CriticalSection& section) ACQUIRE(section) : section_(section) {
    section_.enter();
  }
  /// Leaves the section.
  ~CriticalSectionLock() RELEASE() { section_.leave(); }
  CriticalSectionLock(const CriticalSectionLock&) = delete;
  CriticalSectionLock& operator=(const CriticalSectionLock&) = delete;

 private:
  CriticalSection& section_;  ///< The section held; outlives the lock by construction.
};
// [critical-section-lock]

/// A counter that many threads change without a lock
/// (InterlockedIncrement64 / InterlockedDecrement64; std::atomic elsewhere).
///
/// The server counts its connected clients with one: every worker thread
/// may add or remove a client, and a plain `++count` from two threads at once
/// can lose an update.
class InterlockedCounter {
 public:
  /// Starts at `initial`.
  explicit InterlockedCounter(std::int64_t initial = 0) noexcept : value_(initial) {}
  InterlockedCounter(const InterlockedCounter&) = delete;
  InterlockedCounter& operator=(const InterlockedCounter&) = delete;

  // [interlocked-increment]
  /// Adds one and returns the new value (InterlockedIncrement64).
  std::int64_t increment() noexcept {
#ifdef _WIN32
    return InterlockedIncrement64(&value_);
#else
    return value_.fetch_add(1, std::memory_order_acq_rel) + 1;
#endif
  }
  // [interlocked-increment]

  /// Subtracts one and returns the new value (InterlockedDecrement64).
  std::int64_t decrement() noexcept {
#ifdef _WIN32
    return InterlockedDecrement64(&value_);
#else
    return value_.fetch_sub(1, std::memory_order_acq_rel) - 1;
#endif
  }

  /// Adds `delta` and returns the new value (InterlockedExchangeAdd64).
  std::int64_t add(std::int64_t delta) noexcept {
#ifdef _WIN32
    return InterlockedExchangeAdd64(&value_, delta) + delta;
#else
    return value_.fetch_add(delta, std::memory_order_acq_rel) + delta;
#endif
  }

  /// The current value (an interlocked read: InterlockedCompareExchange64 with equal operands).
  std::int64_t value() const noexcept {
#ifdef _WIN32
    return InterlockedCompareExchange64(&value_, 0, 0);
#else
    return value_.load(std::memory_order_acquire);
#endif
  }

 private:
#ifdef _WIN32
  mutable volatile LONG64 value_;  ///< Interlocked* functions take a volatile LONG64*.
#else
  std::atomic<std::int64_t> value_;  ///< The portable equivalent.
#endif
};

}  // namespace iocp_chat
