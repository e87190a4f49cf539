// spare_descriptor.hpp — one file descriptor kept in reserve, so that a
// server that has run out of descriptors can still take a waiting connection
// off the listener's queue and close it, instead of leaving it there.
//
// IOCP idea: the server keeps accepts pre-posted (AcceptEx). When the process
// has no descriptor left, each of them completes with an error (EMFILE on
// Linux) while the connection that caused it stays queued — so the listener
// stays "ready" and a server that simply re-posts would fail again at once,
// forever, at 100% CPU, while the waiting client hangs. The remedy the
// classic event loops describe: hold one spare descriptor (an open
// /dev/null); on EMFILE give it up, accept the connection with it, close
// that connection at once, and take the spare back. The client sees its
// connection closed; the server burns no CPU; connected clients are served.
//
// Windows has no per-process descriptor limit to exhaust, and AcceptEx
// creates its socket before it starts: there the spare does nothing
// (release() is false) and a failed accept simply waits before it is re-posted.
#pragma once

#include <atomic>
#include <system_error>

#include "iocp_chat/sync.hpp"

namespace iocp_chat {

/// One descriptor held in reserve for the moment the process runs out (Linux:
/// an open /dev/null). Safe to use from several worker threads at once.
class SpareDescriptor {
 public:
  /// Opens the spare.
  SpareDescriptor() noexcept;
  /// Closes the spare, if held.
  ~SpareDescriptor();
  SpareDescriptor(const SpareDescriptor&) = delete;
  SpareDescriptor& operator=(const SpareDescriptor&) = delete;

  /// True for an accept's error that means "no descriptor left" (EMFILE, ENFILE).
  static bool is_exhaustion(const std::error_code& error) noexcept;

  /// Closes the spare so that one descriptor is free for an accept. False if
  /// there was none to give (already released, or on Windows).
  bool release() noexcept;

  /// Takes the spare back if it was released. True when it is held afterwards,
  /// i.e. the process is not out of descriptors; false while it still is.
  bool restore() noexcept;

 private:
  CriticalSection lock_;              ///< Orders release() and restore() from different workers.
  int descriptor_ GUARDED_BY(lock_);  ///< The open /dev/null, or -1.
  std::atomic<bool> held_{false};     ///< descriptor_ is open: restore()'s fast path without the lock.
};

}  // namespace iocp_chat
