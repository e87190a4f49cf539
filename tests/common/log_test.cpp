// log_test.cpp — logging never makes the logging thread wait for the output:
// a standard error that nobody reads costs dropped lines (counted and
// reported), never a stuck worker; and what is queued is written when the
// program ends normally.
//
// IOCP idea shown: a worker thread blocks only in the completion port's
// wait. The servers log while they hold a client's lock, so a log call that
// waits for a full pipe would stall every worker behind that lock.
#include "iocp_chat/log.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <future>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#ifndef _WIN32
#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <condition_variable>
#include <mutex>
#endif

namespace iocp_chat {
namespace {

/// Only stops a stuck test; never a speed limit.
constexpr std::chrono::milliseconds kDeadline{30000};

TEST(LogTest, TheObserverHasSeenTheLineWhenLogLineReturns) {
  std::vector<std::string> seen;
  set_log_observer([&](std::string_view line) { seen.emplace_back(line); });
  set_logging_enabled(false);  // the observer sees lines even while logging is silenced
  log_line("first");
  EXPECT_EQ(seen, std::vector<std::string>{"first"});
  log_line("second");
  set_logging_enabled(true);
  set_log_observer({});
  EXPECT_EQ(seen, (std::vector<std::string>{"first", "second"}));
}

#ifndef _WIN32
/// The death-test child's standard error, made slow on purpose: fd 2 is a
/// pipe that a relay thread copies to the real standard error, but only
/// once the child is exiting. See log_and_exit.
struct HeldBackStderr {
  int real = -1;                    ///< The child's real standard error (the parent reads it).
  int pipe_read = -1;               ///< The pipe's read end; its write end is fd 2.
  std::thread relay;                ///< Copies the pipe to `real` once released, until the pipe's end.
  std::mutex mutex;                 ///< Guards released.
  std::condition_variable changed;  ///< Signals released.
  bool released = false;            ///< The relay may start copying.
};
/// The child's HeldBackStderr (the atexit handlers below take no argument).
HeldBackStderr* g_held = nullptr;

/// atexit handler registered last, so it runs first, before the log's exit flush: start the relay.
void release_relay() {
  {
    const std::lock_guard lock(g_held->mutex);
    g_held->released = true;
  }
  g_held->changed.notify_one();
}

/// atexit handler registered first, so it runs after the log's exit flush:
/// whatever the logger has not written by now goes to /dev/null, and the
/// relay copies what the pipe holds, up to its end.
void end_relay() {
  const int null = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  ::dup2(null, STDERR_FILENO);
  ::close(null);
  g_held->relay.join();
}
#endif

/// The death-test child: logs like a busy server, logs "server stopped" and
/// exits at once. On Linux it first makes sure that the last line is still
/// queued when std::exit begins (the writer is blocked on a full pipe), so
/// only a flush at exit can get it out.
void log_and_exit() {
  set_logging_enabled(true);
#ifndef _WIN32
  g_held = new HeldBackStderr();
  int pipe_fds[2];
  if (::pipe2(pipe_fds, O_CLOEXEC) != 0) std::_Exit(2);
  g_held->real = ::dup(STDERR_FILENO);
  g_held->pipe_read = pipe_fds[0];
  ::dup2(pipe_fds[1], STDERR_FILENO);
  ::close(pipe_fds[1]);
  g_held->relay = std::thread([] {
    std::unique_lock lock(g_held->mutex);
    g_held->changed.wait(lock, [] { return g_held->released; });
    lock.unlock();
    char buffer[65536];
    for (;;) {
      const ssize_t got = ::read(g_held->pipe_read, buffer, sizeof buffer);
      if (got < 0 && errno == EINTR) continue;
      if (got <= 0) return;
      if (::write(g_held->real, buffer, static_cast<std::size_t>(got)) != got) return;
    }
  });
  std::atexit(end_relay);  // before the first log_line registers the log's handler
#endif
  for (int i = 0; i < 5000; ++i) log_line("line " + std::to_string(i) + " of a busy server");
#ifndef _WIN32
  // 5000 lines are three times what the pipe holds: once it is full, the
  // writer is blocked in the middle of its lines, and the next line waits
  // in the queue.
  pollfd full{STDERR_FILENO, POLLOUT, 0};
  for (int i = 0; i < 30000 && ::poll(&full, 1, 0) != 0; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
#endif
  log_line("server stopped");
#ifndef _WIN32
  std::atexit(release_relay);  // after the log's handler: runs before it
#endif
  std::exit(0);
}

// The child's standard error must hold its last line: the queue is written
// before the process ends ("threadsafe" runs the child as a new process,
// also on Windows). Before the exit flush existed, the Linux child's last
// line always went to /dev/null (see log_and_exit).
TEST(LogTest, TheLastLinesAreWrittenWhenTheProgramEnds) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  EXPECT_EXIT(log_and_exit(), ::testing::ExitedWithCode(0),
              "line 4999 of a busy server\r?\n.*server stopped");
}

#ifndef _WIN32
/// Lines the test logs: four times the queue's bound (1 MiB), and far more
/// than the pipe holds, so some must be dropped.
constexpr int kLines = 40000;

/// The text of the test's i-th line (about 100 bytes with the time stamp).
std::string spam(int i) { return "spam " + std::to_string(i) + " " + std::string(80, 'x'); }

/// Reads `fd` until the end of the stream.
std::string read_all(int fd) {
  std::string text;
  char buffer[65536];
  for (;;) {
    const ssize_t got = ::read(fd, buffer, sizeof buffer);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) return text;
    text.append(buffer, static_cast<std::size_t>(got));
  }
}

// Standard error becomes a pipe that nobody reads. Before the fix, the
// first 64 KiB filled it and log_line blocked for good inside fwrite, under
// the lock every other logging thread needed.
TEST(LogTest, AStandardErrorNobodyReadsNeverBlocksTheLoggingThread) {
  set_logging_enabled(true);
  int pipe_fds[2];
  ASSERT_EQ(::pipe2(pipe_fds, O_CLOEXEC), 0);
  const int saved_stderr = ::dup(STDERR_FILENO);
  ASSERT_GE(saved_stderr, 0);
  ASSERT_EQ(::dup2(pipe_fds[1], STDERR_FILENO), STDERR_FILENO);
  ::close(pipe_fds[1]);

  // kLines calls on another thread; each must return although nothing is read.
  std::atomic<int> returned{0};
  std::packaged_task<void()> task([&] {
    for (int i = 0; i < kLines; ++i) {
      log_line(spam(i));
      returned.fetch_add(1);
    }
  });
  std::future<void> done = task.get_future();
  std::thread logger(std::move(task));
  const bool finished = done.wait_for(kDeadline) == std::future_status::ready;
  EXPECT_TRUE(finished) << "log_line blocked after " << returned.load() << " of " << kLines
                        << " lines while nobody read standard error";

  // Now read the pipe: the writer catches up (and a blocked logger, before
  // the fix, is released, so the test can end).
  std::string output;
  std::thread reader([&] { output = read_all(pipe_fds[0]); });
  logger.join();
  EXPECT_EQ(returned.load(), kLines);
  EXPECT_TRUE(flush_log(kDeadline)) << "the writer did not catch up once the pipe was read";
  log_line("after the drops");
  EXPECT_TRUE(flush_log(kDeadline));
  ::dup2(saved_stderr, STDERR_FILENO);  // the pipe's last writer is gone: the reader sees its end
  ::close(saved_stderr);
  reader.join();
  ::close(pipe_fds[0]);

  // Every line is accounted for: written, or counted in a "dropped" line.
  std::uint64_t written = 0;
  std::uint64_t dropped = 0;
  std::size_t first_notice = std::string::npos;
  std::size_t start = 0;
  while (start < output.size()) {
    std::size_t end = output.find('\n', start);
    if (end == std::string::npos) end = output.size();
    const std::string_view line(output.data() + start, end - start);
    if (line.find(" spam ") != std::string_view::npos) ++written;
    if (const std::size_t at = line.find(" log lines dropped"); at != std::string_view::npos) {
      const std::size_t number = line.rfind(' ', at - 1) + 1;
      dropped += std::stoull(std::string(line.substr(number, at - number)));
      if (first_notice == std::string::npos) first_notice = start;
    }
    start = end + 1;
  }
  EXPECT_GT(dropped, 0U) << "no 'log lines dropped' line was written";
  EXPECT_EQ(written + dropped, static_cast<std::uint64_t>(kLines));
  const std::size_t after = output.find(" after the drops\n");
  EXPECT_NE(after, std::string::npos) << "logging did not go on once the output moved again";
  EXPECT_LT(first_notice, after);
}
#endif

}  // namespace
}  // namespace iocp_chat
