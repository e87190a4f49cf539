// log.cpp — timestamped, whole-line logging to standard error.
#include "iocp_chat/log.hpp"

#include <atomic>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <string>
#include <utility>

namespace iocp_chat {
namespace {
std::atomic<bool> g_enabled{true};
std::atomic<bool> g_observed{false};
std::mutex g_output;
std::function<void(std::string_view)> g_observer;  // guarded by g_output
}  // namespace

void set_logging_enabled(bool enabled) noexcept { g_enabled.store(enabled, std::memory_order_relaxed); }

void set_log_observer(std::function<void(std::string_view)> observer) {
  const std::lock_guard lock(g_output);
  g_observed.store(static_cast<bool>(observer));
  g_observer = std::move(observer);
}

void log_line(std::string_view text) {
  if (g_observed.load()) {
    const std::lock_guard lock(g_output);
    if (g_observer) g_observer(text);
  }
  if (!g_enabled.load(std::memory_order_relaxed)) return;
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
  std::string line = stamp;
  line.append(text);
  line.push_back('\n');
  const std::lock_guard lock(g_output);
  std::fwrite(line.data(), 1, line.size(), stderr);
  std::fflush(stderr);
}

}  // namespace iocp_chat
