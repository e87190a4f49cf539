// exercise_support.hpp — the few socket helpers the exercise checks share:
// read what a real client received, and see whether the server closed it.
//
// Test idea (as in tests/): a check judges the learner's server only by what
// a real client on 127.0.0.1 receives; every wait has a generous deadline
// that stops a stuck test and is never a speed limit.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>
#include <system_error>
#include <vector>

#include "iocp_chat/socket.hpp"

namespace iocp_chat::exercises {

/// How long a check waits for bytes or a close before it calls it a failure.
inline constexpr std::chrono::seconds kDeadline{20};

/// Reads from `socket` until `wanted` bytes arrived, the stream ended, or `deadline` passed.
inline std::string read_text(const Socket& socket, std::size_t wanted,
                             std::chrono::milliseconds deadline = kDeadline) {
  std::string text;
  std::vector<std::byte> buffer(65536);
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (text.size() < wanted && std::chrono::steady_clock::now() < until) {
    if (!wait_readable(socket, 50)) continue;
    std::error_code error;
    const std::size_t count = receive_some(socket, buffer, error);
    if (error || count == 0) break;
    text.append(reinterpret_cast<const char*>(buffer.data()), count);
  }
  return text;
}

/// Reads until the server ends the stream (or resets it); what was read goes
/// to `text`. False if the connection is still open after `deadline`.
inline bool read_until_closed(const Socket& socket, std::string& text,
                              std::chrono::milliseconds deadline = kDeadline) {
  std::vector<std::byte> buffer(65536);
  const auto until = std::chrono::steady_clock::now() + deadline;
  while (std::chrono::steady_clock::now() < until) {
    if (!wait_readable(socket, 50)) continue;
    std::error_code error;
    const std::size_t count = receive_some(socket, buffer, error);
    if (error || count == 0) return true;
    text.append(reinterpret_cast<const char*>(buffer.data()), count);
  }
  return false;
}

}  // namespace iocp_chat::exercises
