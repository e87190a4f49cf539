// spare_descriptor.cpp — the reserved descriptor behind the "accept and
// close when out of descriptors" remedy (see spare_descriptor.hpp).
//
// IOCP idea: the completion-port layer reports a failed accept like any other
// completion; what to do about it is the server's decision, and this is the
// tool it uses so that the decision costs no CPU and strands no client.
#include "iocp_chat/spare_descriptor.hpp"

#ifndef _WIN32
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#endif

namespace iocp_chat {
namespace {

/// Opens /dev/null (close-on-exec); -1 if the process is out of descriptors.
int open_spare() noexcept {
#ifdef _WIN32
  return -1;  // nothing to reserve: Windows has no per-process descriptor limit
#else
  return ::open("/dev/null", O_RDONLY | O_CLOEXEC);
#endif
}

}  // namespace

SpareDescriptor::SpareDescriptor() noexcept {
  const CriticalSectionLock lock(lock_);
  descriptor_ = open_spare();
  held_.store(descriptor_ >= 0);
}

SpareDescriptor::~SpareDescriptor() {
#ifndef _WIN32
  const CriticalSectionLock lock(lock_);
  if (descriptor_ >= 0) ::close(descriptor_);
#endif
}

// The layer reports errno values in its own "os" category (os_error.hpp),
// so the value is compared, not an std::errc condition.
bool SpareDescriptor::is_exhaustion(const std::error_code& error) noexcept {
#ifdef _WIN32
  (void)error;
  return false;  // no per-process limit; release() would have nothing to give anyway
#else
  return error.value() == EMFILE || error.value() == ENFILE;
#endif
}

bool SpareDescriptor::release() noexcept {
#ifdef _WIN32
  return false;
#else
  const CriticalSectionLock lock(lock_);
  if (descriptor_ < 0) return false;
  // "Not held" must be visible before the descriptor is free: the moment it
  // is closed, another worker's accept can take its number, and that
  // accept's restore() must not see a stale "held" on its fast path and
  // admit the connection in the spare's room (the spare would then be gone
  // for good, and every later accept would fail with nothing to give).
  held_.store(false);
  ::close(descriptor_);
  descriptor_ = -1;
  return true;
#endif
}

bool SpareDescriptor::restore() noexcept {
#ifdef _WIN32
  return true;
#else
  if (held_.load()) return true;  // the common case: one atomic load per accept
  const CriticalSectionLock lock(lock_);
  if (descriptor_ < 0) descriptor_ = open_spare();
  held_.store(descriptor_ >= 0);
  return descriptor_ >= 0;
#endif
}

}  // namespace iocp_chat
