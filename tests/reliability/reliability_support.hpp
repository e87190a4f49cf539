// reliability_support.hpp — small tools for the fault, load and hostile-input
// tests of both servers: reading the server's log, counting this process's
// open descriptors, raising the descriptor limit, and a watchdog for a call
// that must return.
//
// Test idea: the servers promise behaviour under stress — a reason in the
// log, descriptors back to their baseline, stop() that returns — and these
// helpers let a test observe exactly that from the outside of the server,
// on real sockets, with deadlines that only stop a stuck test.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <future>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "iocp_chat/log.hpp"
#include "iocp_chat/socket.hpp"

#ifndef _WIN32
#include <dirent.h>
#include <sys/resource.h>
#include <sys/socket.h>
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

}  // namespace iocp_chat::reliability
