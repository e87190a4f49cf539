// shutdown_signal.cpp — SetConsoleCtrlHandler on Windows, sigwait on Linux.
#include "iocp_chat/shutdown_signal.hpp"

#ifdef _WIN32
#include <windows.h>

#include <condition_variable>
#include <mutex>
#else
#include <pthread.h>
#include <csignal>
#endif

namespace iocp_chat {

#ifdef _WIN32
namespace {
std::mutex g_mutex;
std::condition_variable g_signalled;
bool g_stop = false;

// Runs on a thread Windows creates for the event; returning TRUE says "handled".
BOOL WINAPI on_console_event(DWORD) {
  {
    const std::lock_guard lock(g_mutex);
    g_stop = true;
  }
  g_signalled.notify_all();
  return TRUE;
}
}  // namespace

void prepare_shutdown_signal() { SetConsoleCtrlHandler(on_console_event, TRUE); }

void wait_for_shutdown_signal() {
  std::unique_lock lock(g_mutex);
  g_signalled.wait(lock, [] { return g_stop; });
}
#else
namespace {
sigset_t shutdown_signals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  return set;
}
}  // namespace

void prepare_shutdown_signal() {
  const sigset_t set = shutdown_signals();
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  std::signal(SIGPIPE, SIG_IGN);  // a peer that vanished is an error code, not a crash
}

void wait_for_shutdown_signal() {
  const sigset_t set = shutdown_signals();
  int received = 0;
  sigwait(&set, &received);
}
#endif

}  // namespace iocp_chat
