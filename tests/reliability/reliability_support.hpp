// reliability_support.hpp — small tools for the fault, load and hostile-input
// tests of both servers: reading the server's log, counting this process's
// open descriptors, raising the descriptor limit, a watchdog for a call that
// must return, a reader that reads at a set pace, and this process's
// resident memory.
//
// Test idea: the servers promise behaviour under stress — a reason in the
// log, descriptors back to their baseline, stop() that returns — and these
// helpers let a test observe exactly that from the outside of the server,
// on real sockets, with deadlines that only stop a stuck test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "iocp_chat/completion_port.hpp"
#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"

#ifndef _WIN32
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <fstream>
#endif

namespace iocp_chat::reliability {

/// Generous: a deadline to fail a stuck test, never a performance limit.
inline constexpr std::chrono::seconds kDeadline{30};

/// Collects the lines the servers log while it exists (set_log_observer).
class LogRecorder {
 public:
  /// Starts collecting.
  LogRecorder() {
    set_log_observer([this](std::string_view line) {
      const std::lock_guard lock(mutex_);
      lines_.emplace_back(line);
    });
  }
  /// Stops collecting.
  ~LogRecorder() { set_log_observer({}); }
  LogRecorder(const LogRecorder&) = delete;
  LogRecorder& operator=(const LogRecorder&) = delete;

  /// True if some line logged so far contains `text`.
  bool contains(std::string_view text) const {
    const std::lock_guard lock(mutex_);
    return std::any_of(lines_.begin(), lines_.end(),
                       [&](const std::string& line) { return line.find(text) != std::string::npos; });
  }

  /// Every line so far, one per line, for an assertion message.
  std::string text() const {
    const std::lock_guard lock(mutex_);
    std::string all;
    for (const auto& line : lines_) all += line + "\n";
    return all;
  }

 private:
  mutable std::mutex mutex_;        ///< The observer runs on the server's worker threads.
  std::vector<std::string> lines_;  ///< What was logged.
};

/// Descriptors open in this process right now (Linux: /proc/self/fd); -1 where unknown.
inline int open_descriptors() {
#ifdef _WIN32
  return -1;
#else
  DIR* directory = ::opendir("/proc/self/fd");
  if (directory == nullptr) return -1;
  int count = 0;
  while (const dirent* entry = ::readdir(directory)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(directory);
  return count - 1;  // the directory's own descriptor
#endif
}

/// Raises this process's descriptor limit (soft → hard) so that it can hold
/// at least `wanted` descriptors; false (with the limits in `why`) if it cannot.
/// Windows has no such limit: always true there.
inline bool raise_descriptor_limit(std::size_t wanted, std::string& why) {
#ifdef _WIN32
  (void)wanted;
  (void)why;
  return true;
#else
  rlimit limit{};
  if (::getrlimit(RLIMIT_NOFILE, &limit) != 0) {
    why = "getrlimit failed";
    return false;
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    limit.rlim_cur = limit.rlim_max;
    ::setrlimit(RLIMIT_NOFILE, &limit);
    ::getrlimit(RLIMIT_NOFILE, &limit);
  }
  if (limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur < wanted) {
    why = "needs " + std::to_string(wanted) + " descriptors, the hard limit is " +
          std::to_string(limit.rlim_max);
    return false;
  }
  return true;
#endif
}

/// Shrinks a socket's receive buffer, so that a client that stops reading
/// backs up into the server's queue after a few kilobytes, not megabytes.
inline void shrink_receive_buffer(const Socket& socket, int bytes) {
  ::setsockopt(socket.native(), SOL_SOCKET, SO_RCVBUF, reinterpret_cast<const char*>(&bytes), sizeof bytes);
}

/// Runs `call` and waits up to `deadline` for it to return. A call that does
/// not return (a hung stop(), say) fails the test and ends the process: there
/// is no safe way to go on with a thread stuck inside the server.
inline void must_return_within(const std::function<void()>& call, std::chrono::milliseconds deadline,
                               const char* what) {
  std::packaged_task<void()> task(call);
  std::future<void> done = task.get_future();
  std::thread runner(std::move(task));
  if (done.wait_for(deadline) != std::future_status::ready) {
    std::fprintf(stderr, "FATAL: %s did not return within %lld ms\n", what,
                 static_cast<long long>(deadline.count()));
    std::fflush(stderr);
    std::_Exit(1);
  }
  runner.join();
  done.get();
}

/// A client that reads whatever arrives, but never faster than a set rate:
/// an ordinary person's client on a modest link. It counts the bytes and
/// notices when the server closes it. Works for both stages (it does not
/// look at the bytes).
class PacedReader {
 public:
  /// Reads from `socket` on a thread of its own, at most `bytes_per_second`.
  PacedReader(Socket socket, std::size_t bytes_per_second) : socket_(std::move(socket)) {
    thread_ = std::thread([this, bytes_per_second] {
      std::vector<std::byte> buffer(16 * 1024);
      const auto start = std::chrono::steady_clock::now();
      while (!stop_.load()) {
        // Ahead of the pace: let time catch up before reading on.
        const auto due = start + std::chrono::microseconds(received_.load() * 1'000'000 / bytes_per_second);
        if (std::chrono::steady_clock::now() < due) {
          std::this_thread::sleep_until(
              std::min(due, std::chrono::steady_clock::now() + std::chrono::milliseconds(20)));
          continue;
        }
        if (!wait_readable(socket_, 20)) continue;
        std::error_code error;
        const std::size_t count = receive_some(socket_, buffer, error);
        if (error || count == 0) {
          ended_.store(true);
          return;
        }
        received_.fetch_add(count);
      }
    });
  }
  PacedReader(const PacedReader&) = delete;
  PacedReader& operator=(const PacedReader&) = delete;
  /// Stops reading (the socket stays open until destruction).
  ~PacedReader() { stop(); }
  /// Stops the reading thread.
  void stop() {
    stop_.store(true);
    if (thread_.joinable()) thread_.join();
  }
  /// Bytes read so far.
  std::size_t received() const { return received_.load(); }
  /// True once the server closed this client.
  bool ended() const { return ended_.load(); }
  /// The socket, to send on (from another thread than the reading one).
  Socket& socket() { return socket_; }

 private:
  Socket socket_;                         ///< Connected (and, for ver.2, logged in).
  std::atomic<std::size_t> received_{0};  ///< Bytes read.
  std::atomic<bool> stop_{false};         ///< Tells the thread to stop.
  std::atomic<bool> ended_{false};        ///< End of stream or an error.
  std::thread thread_;                    ///< The reading thread.
};

/// A size field of /proc/<pid>/status ("VmRSS:", "VmSize:") in bytes; 0
/// where unknown (Windows, or no such field). `pid` "self" is this process.
inline std::size_t proc_status_bytes(const std::string& pid, const std::string& field) {
#ifdef _WIN32
  (void)pid;
  (void)field;
  return 0;
#else
  std::ifstream status("/proc/" + pid + "/status");
  std::string word;
  while (status >> word) {
    if (word == field) {
      std::size_t kilobytes = 0;
      status >> kilobytes;
      return kilobytes * 1024;
    }
  }
  return 0;
#endif
}

/// This process's resident memory (Linux: VmRSS); std::nullopt where unknown.
inline std::optional<std::size_t> resident_bytes() {
  const std::size_t bytes = proc_status_bytes("self", "VmRSS:");
  return bytes != 0 ? std::optional(bytes) : std::nullopt;
}

/// Samples resident_bytes() every few milliseconds while it exists and keeps the peak.
class PeakResidentMemory {
 public:
  /// Starts sampling.
  PeakResidentMemory()
      : thread_([this] {
          while (!stop_.load()) {
            if (const auto now = resident_bytes()) peak_.store(std::max(peak_.load(), *now));
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
          }
        }) {}
  PeakResidentMemory(const PeakResidentMemory&) = delete;
  PeakResidentMemory& operator=(const PeakResidentMemory&) = delete;
  /// Stops sampling.
  ~PeakResidentMemory() {
    stop_.store(true);
    thread_.join();
  }
  /// The highest sample so far (0 where it cannot be measured).
  std::size_t peak() const { return peak_.load(); }

 private:
  std::atomic<std::size_t> peak_{0};  ///< Highest VmRSS seen.
  std::atomic<bool> stop_{false};     ///< Tells the thread to stop.
  std::thread thread_;                ///< The sampling thread.
};

/// True in an AddressSanitizer build, whose quarantine keeps freed memory
/// resident on purpose: memory figures mean nothing there.
inline constexpr bool kAddressSanitizer =
#if defined(__SANITIZE_ADDRESS__)
    true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

/// True in a ThreadSanitizer build (which, like ASan, reserves shadow memory).
inline constexpr bool kThreadSanitizer =
#if defined(__SANITIZE_THREAD__)
    true;
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
    true;
#else
    false;
#endif
#else
    false;
#endif

/// True where resident memory says nothing of the program's own use: the
/// sanitizers keep shadow memory (TSan) or freed blocks (ASan) resident.
inline constexpr bool kSanitizedMemory = kAddressSanitizer || kThreadSanitizer;

/// The total-bound tests' check: from `baseline` to `peak` resident memory
/// may grow by at most three times the `bound` on queued bytes (queues, the
/// vectors' spare capacity, the allocator's own). Printed, for the docs.
inline void expect_growth_near_bound(std::size_t baseline, std::size_t peak, std::size_t bound) {
  if (baseline == 0 || kSanitizedMemory) return;  // nothing to measure here
  const std::size_t growth = peak - std::min(peak, baseline);
  EXPECT_LE(growth, 3 * bound) << "resident memory grew " << growth << " bytes, bound " << bound;
  std::printf("resident memory grew %.1f MiB over a %.1f MiB baseline (bound %.0f MiB)\n",
              static_cast<double>(growth) / 1048576, static_cast<double>(baseline) / 1048576,
              static_cast<double>(bound) / 1048576);
}

/// How fast the flooder tests' ordinary readers read: 2 MB/s, a modest
/// link. Where the server itself runs several times slower, a flood cannot
/// outrun 2 MB/s readers and there is nothing to push back on: so 250 KB/s
/// in the ASan and TSan builds and on Wine's IOCP. (500 KB/s was tried under
/// ASan: on a loaded 2-core machine the flooder managed 0.8 MB/s of
/// broadcasts, and the readers' kernel buffers absorbed the surplus for 20 s.)
inline std::size_t ordinary_reader_pace(Backend backend) {
  return backend == Backend::iocp || kSanitizedMemory ? 250'000 : 2'000'000;
}

}  // namespace iocp_chat::reliability
