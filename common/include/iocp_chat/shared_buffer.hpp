// shared_buffer.hpp — bytes that several owners may hold without copying:
// an encoded frame that a send operation keeps alive until its completion,
// or that a room hands to several recipients' queues.
//
// IOCP idea: the buffer given to WSASend belongs to the kernel until the
// completion is dequeued, so whoever started the send must keep it alive;
// a reference-counted buffer makes "alive until the last holder is done"
// automatic. Its own header, so that code which only builds frames (the
// ver.2 room) needs nothing of the completion port or of <windows.h>.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

namespace iocp_chat {

/// Bytes that several holders may share; never changed once made.
using SharedBuffer = std::shared_ptr<const std::vector<std::byte>>;

/// Makes a SharedBuffer holding a copy of `bytes`.
inline SharedBuffer make_shared_buffer(std::span<const std::byte> bytes) {
  return std::make_shared<const std::vector<std::byte>>(bytes.begin(), bytes.end());
}

}  // namespace iocp_chat
