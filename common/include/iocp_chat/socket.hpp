// socket.hpp — a TCP socket that closes itself, Winsock start-up, and the
// few blocking helpers that clients and tests need.
//
// IOCP idea: the server hands sockets to the completion port and never
// blocks on them; the blocking helpers here (connect, send_all,
// receive_some) are for the console client and the tests, which are
// ordinary sequential programs. On Windows a socket is a SOCKET handle and
// Winsock must be started (WSAStartup) before any call; on Linux it is a
// file descriptor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <system_error>

#ifdef _WIN32
// WIN32_LEAN_AND_MEAN and NOMINMAX come with iocp_chat::common (common/CMakeLists.txt).
#include <winsock2.h>
#include <ws2tcpip.h>
#endif

namespace iocp_chat {

#ifdef _WIN32
/// The OS handle of a socket: SOCKET (a UINT_PTR) on Windows.
using NativeSocket = SOCKET;
/// The value of "no socket" (INVALID_SOCKET).
inline constexpr NativeSocket kInvalidSocket = INVALID_SOCKET;
#else
/// The OS handle of a socket: a file descriptor on Linux.
using NativeSocket = int;
/// The value of "no socket".
inline constexpr NativeSocket kInvalidSocket = -1;
#endif

/// Keeps Winsock started for its lifetime (WSAStartup / WSACleanup); does
/// nothing on Linux. Every program creates one in main before using sockets;
/// Winsock counts them, so nested sessions are fine.
class NetworkSession {
 public:
  /// WSAStartup(2.2); throws std::system_error if Winsock cannot start.
  NetworkSession();
  /// WSACleanup.
  ~NetworkSession();
  NetworkSession(const NetworkSession&) = delete;
  NetworkSession& operator=(const NetworkSession&) = delete;
};

/// Owns one socket and closes it (closesocket / close) when destroyed.
/// Move-only, like a std::unique_ptr of a handle.
class Socket {
 public:
  /// No socket.
  Socket() noexcept = default;
  /// Takes ownership of `handle`.
  explicit Socket(NativeSocket handle) noexcept : handle_(handle) {}
  /// Closes the socket, if any.
  ~Socket() { close(); }
  /// Takes the other's socket; the other is left empty.
  Socket(Socket&& other) noexcept : handle_(other.release()) {}
  /// Closes this socket and takes the other's.
  Socket& operator=(Socket&& other) noexcept;
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;

  /// The OS handle, still owned by this object.
  NativeSocket native() const noexcept { return handle_; }
  /// True if this object owns a socket.
  bool is_open() const noexcept { return handle_ != kInvalidSocket; }
  /// Gives up ownership and returns the handle.
  NativeSocket release() noexcept;
  /// Closes the socket now (closesocket / close).
  void close() noexcept;

 private:
  NativeSocket handle_ = kInvalidSocket;  ///< kInvalidSocket when empty.
};

/// A listening TCP socket bound to `address:port` (port 0 picks a free one).
/// SO_REUSEADDR on Linux so a restarted server can bind at once; throws
/// std::system_error with the OS's message on failure.
Socket open_listener(const std::string& address, std::uint16_t port, int backlog = 1024);

/// A connected TCP socket (blocking connect); throws std::system_error.
Socket connect_to(const std::string& host, std::uint16_t port);

/// The local port a socket is bound to (e.g. after binding port 0).
std::uint16_t local_port(const Socket& socket);

/// "address:port" of the peer, for log lines; "?" if unknown.
std::string peer_name(const Socket& socket);

/// Sends every byte, blocking (a loop over send, since send may take fewer).
std::error_code send_all(const Socket& socket, std::span<const std::byte> bytes);

/// Sends every byte of a text.
std::error_code send_all(const Socket& socket, std::string_view text);

/// Receives what is available, blocking until at least one byte or the end.
/// Returns the byte count, 0 when the peer closed; sets `error` on failure.
std::size_t receive_some(const Socket& socket, std::span<std::byte> buffer, std::error_code& error);

/// Waits up to `timeout_ms` for the socket to become readable (select);
/// true if readable (data, end of stream or an error is pending).
bool wait_readable(const Socket& socket, int timeout_ms);

/// Half-close: no more sends from this side (shutdown SD_SEND / SHUT_WR);
/// the peer reads the end of the stream, and this side can still receive.
void shutdown_send(const Socket& socket) noexcept;

/// Abortive close: SO_LINGER {on, 0} then close, so the peer sees a reset (RST).
void close_with_reset(Socket& socket) noexcept;

/// Disables Nagle's algorithm (TCP_NODELAY): small chat lines leave at once.
void set_no_delay(const Socket& socket) noexcept;

/// Bytes the OS has received for this socket and nobody has read yet
/// (ioctlsocket / ioctl FIONREAD); 0 if it cannot tell.
std::size_t unread_bytes(const Socket& socket) noexcept;

}  // namespace iocp_chat
