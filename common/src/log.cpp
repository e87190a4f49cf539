// log.cpp — timestamped, whole-line logging to standard error that never
// makes the logging thread wait for the output.
//
// IOCP idea shown: a worker must not block on anything but the completion
// port. Writing to standard error can block for ever (a pipe that nobody
// reads), and the servers log while they hold a client's lock, on events
// that clients cause at will; writing there under one global lock, as this
// file once did, let one stuck stderr stall every worker. So log_line only
// formats the line and appends it to a bounded queue under a short lock,
// and one writer thread writes whatever has queued up, with no lock held.
//
// Exit: the writer is a detached std::thread and the queue is never
// destroyed, so the writer can still be running, harmlessly, while static
// objects are destroyed. At a normal exit (std::exit, or main returning) a
// handler registered with std::atexit waits up to kExitFlushLimit for the
// queue to be written; lines logged after it (by static destructors) wait
// for themselves the same way. A stuck stderr therefore delays the exit by
// at most that limit instead of for ever.
#include "iocp_chat/log.hpp"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#ifdef _WIN32
#include <io.h>
#else
#include <unistd.h>

#include <cerrno>
#endif

namespace iocp_chat {
namespace {

/// Most bytes of lines waiting for the writer; past it, lines are dropped
/// and counted. Enough for thousands of clients connecting at once; a
/// writer that keeps up never comes near it.
constexpr std::size_t kMaxQueuedBytes = std::size_t{1} << 20;
/// How long the end of the program waits for the queue to be written.
constexpr std::chrono::milliseconds kExitFlushLimit{2000};

std::atomic<bool> g_enabled{true};                 ///< set_logging_enabled's switch.
std::atomic<bool> g_observed{false};               ///< An observer is set (checked without the lock).
std::mutex g_observer_mutex;                       ///< Guards g_observer.
std::function<void(std::string_view)> g_observer;  ///< set_log_observer's; guarded by g_observer_mutex.

/// The queue between log_line and the writer thread. Made on first use and
/// never destroyed (see the file comment); every member is guarded by mutex.
struct Output {
  std::mutex mutex;                  ///< Held only to queue or take lines, never while writing.
  std::condition_variable wake;      ///< Tells the writer that lines (or drops) wait.
  std::condition_variable progress;  ///< Tells flush_log that a batch was written.
  std::string pending;               ///< Whole lines queued, oldest first.
  std::uint64_t dropped = 0;         ///< Lines refused since the writer last took `pending`.
  std::uint64_t taken = 0;           ///< Batches the writer has taken so far.
  std::uint64_t written = 0;         ///< The last batch fully written.
  bool writer_started = false;       ///< The writer thread runs (and the exit handler is registered).
  bool exiting = false;              ///< The exit handler has run: log_line flushes its own line.
};

/// The one Output of the process.
Output& output() {
  static Output* const instance = new Output();  // never deleted: the detached writer may outlive main
  return *instance;
}

/// "HH:MM:SS.mmm " for now, in local time.
std::string time_stamp() {
  const auto now = std::chrono::system_clock::now();
  const std::time_t seconds = std::chrono::system_clock::to_time_t(now);
  const auto millis =
      std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count() % 1000;
  std::tm local{};
#ifdef _WIN32
  localtime_s(&local, &seconds);
#else
  localtime_r(&seconds, &local);
#endif
  char stamp[32];
  std::snprintf(stamp, sizeof stamp, "%02d:%02d:%02d.%03d ", local.tm_hour, local.tm_min, local.tm_sec,
                static_cast<int>(millis));
  return stamp;
}

/// Writes all of `bytes` to standard error's descriptor; gives up on an error.
/// The descriptor, not the stderr FILE: the writer then never holds the
/// FILE's lock while blocked, which the C runtime's exit takes on Windows.
void write_to_stderr(std::string_view bytes) {
  while (!bytes.empty()) {
#ifdef _WIN32
    const int written =
        _write(2, bytes.data(), static_cast<unsigned>(std::min<std::size_t>(bytes.size(), 1 << 20)));
    if (written <= 0) return;
#else
    const ssize_t written = ::write(STDERR_FILENO, bytes.data(), bytes.size());
    if (written < 0 && errno == EINTR) continue;
    if (written <= 0) return;
#endif
    bytes.remove_prefix(static_cast<std::size_t>(written));
  }
}

/// The writer thread: takes everything queued at once, writes it with no
/// lock held, then says "N log lines dropped" if lines were refused
/// meanwhile (they all came after the lines of this batch: once a line is
/// dropped, every line is, until the writer takes the batch).
void write_lines(Output& out) {
  std::string batch;
  std::unique_lock lock(out.mutex);
  for (;;) {
    out.wake.wait(lock, [&] { return !out.pending.empty() || out.dropped > 0; });
    batch.clear();
    batch.swap(out.pending);  // `pending` keeps the old capacity: no allocation next time
    const std::uint64_t dropped = std::exchange(out.dropped, 0);
    const std::uint64_t number = ++out.taken;
    lock.unlock();

    if (dropped > 0) {
      batch += time_stamp() + std::to_string(dropped) +
               " log lines dropped: standard error was not taking them fast enough\n";
    }
    write_to_stderr(batch);

    lock.lock();
    out.written = number;
    out.progress.notify_all();
  }
}

/// Registered with std::atexit when the writer starts: what is queued is
/// written before the process ends (up to kExitFlushLimit).
void flush_at_exit() {
  {
    const std::lock_guard lock(output().mutex);
    output().exiting = true;
  }
  flush_log(kExitFlushLimit);
}

}  // namespace

void set_logging_enabled(bool enabled) noexcept { g_enabled.store(enabled, std::memory_order_relaxed); }

void set_log_observer(std::function<void(std::string_view)> observer) {
  const std::lock_guard lock(g_observer_mutex);
  g_observed.store(static_cast<bool>(observer));
  g_observer = std::move(observer);
}

void log_line(std::string_view text) {
  if (g_observed.load()) {
    const std::lock_guard lock(g_observer_mutex);
    if (g_observer) g_observer(text);
  }
  if (!g_enabled.load(std::memory_order_relaxed)) return;

  std::string line = time_stamp();  // formatted before the lock: the lock is held only to append
  line.append(text);
  line.push_back('\n');

  Output& out = output();
  bool exiting = false;
  {
    const std::lock_guard lock(out.mutex);
    if (!out.writer_started) {
      try {
        std::thread(write_lines, std::ref(out)).detach();
        out.writer_started = true;
        std::atexit(flush_at_exit);
      } catch (const std::system_error&) {
        // No thread now (resource limits): the line waits in the queue, and
        // the next log_line tries again.
      }
    }
    // Once a line is dropped, every line is until the writer takes the
    // queue: the "dropped" notice then stands exactly where the gap is.
    if (out.dropped > 0 || out.pending.size() + line.size() > kMaxQueuedBytes) {
      ++out.dropped;
    } else {
      out.pending += line;
    }
    exiting = out.exiting;
  }
  out.wake.notify_one();
  if (exiting) flush_log(kExitFlushLimit);  // after the exit handler: nobody else would wait for it
}

bool flush_log(std::chrono::milliseconds timeout) {
  // A day stands for "for ever": wait_for's deadline must not overflow.
  timeout = std::min<std::chrono::milliseconds>(timeout, std::chrono::hours(24));
  Output& out = output();
  std::unique_lock lock(out.mutex);
  const bool idle = out.pending.empty() && out.dropped == 0;
  if (!out.writer_started) return idle;
  // Everything queued now goes out in the next batch the writer takes.
  const std::uint64_t target = out.taken + (idle ? 0 : 1);
  return out.progress.wait_for(lock, timeout, [&] { return out.written >= target; });
}

}  // namespace iocp_chat
