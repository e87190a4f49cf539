// async_client_socket.hpp — a TCP client socket driven by WSAAsyncSelect:
// connect, send and receive without blocking and without a thread.
//
// WinAPI idea: WSAAsyncSelect — the socket's events delivered as window
// messages. The client asks Winsock to post a message of its choosing to a
// window whenever the socket can be read (FD_READ), can take more bytes
// (FD_WRITE), has finished connecting (FD_CONNECT) or was closed by the peer
// (FD_CLOSE). Those messages arrive through the same message loop as clicks
// and key presses, so the whole program is one thread reacting to one queue
// of events. This is the client side of the original 2018 design
// ("WSAAsyncSelect for asynchronous send/receive, a message queue of what to
// send"); the server side of the completion model is in the servers.
//
// The class knows bytes only: what they mean — lines in ver.1, frames in
// ver.2 — is up to its owner, told through SocketEvents. Shared by both
// stages' WinAPI clients (the ver.1 chat dialog and the ver.2 client's
// ServerConnection), and with it the handling of WSAAsyncSelect's traps
// (async_client_socket.cpp), so it lives in common/clients/win32/
// (iocp_chat::win32_client).
#pragma once

// Winsock 2 first: windows.h would otherwise bring the old winsock.h.
#include <winsock2.h>

#include <windows.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace iocp_chat::v1 {

/// What an AsyncClientSocket tells its owner. Every call comes on the
/// window's thread, from handle_message(), connect() or close().
class SocketEvents {
 public:
  /// The connection is up (FD_CONNECT without an error); queued bytes go out now.
  virtual void on_socket_connected() = 0;
  /// Bytes arrived, in whatever pieces TCP delivered them.
  virtual void on_socket_received(std::string_view bytes) = 0;
  /// The connection is over, or never came about; `reason` says why in
  /// words. The socket is closed already, and its queue emptied.
  virtual void on_socket_closed(std::wstring_view reason) = 0;

 protected:
  ~SocketEvents() = default;  ///< Not deleted through this interface.
};

/// One client connection: the socket, its bounded outbound queue, and the
/// reaction to each WSAAsyncSelect event.
class AsyncClientSocket {
 public:
  /// Where the connection stands.
  enum class State { kClosed, kConnecting, kConnected };

  /// The most bytes kept queued for sending. A user cannot type that fast,
  /// but a bound is the rule for every queue in this project.
  static constexpr std::size_t kMaxOutboundBytes = 1024 * 1024;

  /// `events` must outlive this object.
  explicit AsyncClientSocket(SocketEvents& events) noexcept : events_(events) {}
  /// Closes the socket without telling the owner (it is going away).
  ~AsyncClientSocket();
  AsyncClientSocket(const AsyncClientSocket&) = delete;
  AsyncClientSocket& operator=(const AsyncClientSocket&) = delete;

  /// Starts connecting to host:port (IPv4); from now on Winsock posts
  /// `message` to `window` for this socket, and the window procedure passes
  /// it to handle_message(). Returns true while the connect is under way;
  /// false if it could not start, after on_socket_closed() said why.
  bool connect(HWND window, UINT message, std::wstring_view host, std::uint16_t port);

  /// Queues `bytes` whole and sends what Winsock takes now; the rest goes
  /// out on FD_WRITE. Bytes queued while connecting go out once connected.
  /// False (nothing queued) if there is no connection or the queue would
  /// grow past kMaxOutboundBytes.
  bool send(std::string_view bytes);

  /// Closes the connection now and reports on_socket_closed(reason);
  /// does nothing if there is none.
  void close(std::wstring_view reason);

  /// Handles one message that WSAAsyncSelect posted (wParam: the socket,
  /// lParam: the event and its error code).
  void handle_message(WPARAM wparam, LPARAM lparam);

  /// Where the connection stands.
  State state() const noexcept { return state_; }
  /// "host:port" of the last connect, for status lines.
  const std::wstring& server_name() const noexcept { return server_name_; }

 private:
  void on_connected(int error);    ///< FD_CONNECT: up, or failed with `error`.
  void on_peer_closed(int error);  ///< FD_CLOSE: read what is left, then close.
  bool receive_once();             ///< One recv; false at the end of what there is.
  void flush_outbound();           ///< Sends queued bytes until Winsock would block.
  void release();                  ///< Closes the socket without an event.

  SocketEvents& events_;            ///< The owner, told of every change.
  HWND window_ = nullptr;           ///< Where Winsock posts message_.
  UINT message_ = 0;                ///< The message chosen for this socket's events.
  SOCKET socket_ = INVALID_SOCKET;  ///< The one connection; INVALID_SOCKET when none.
  State state_ = State::kClosed;    ///< What socket_ is doing.
  std::wstring server_name_;        ///< "host:port" for status lines.
  std::string outbound_;            ///< Bytes accepted from the owner, not yet taken by send().
};

/// The OS's words for a Winsock error code, e.g. "Connection refused (10061)".
std::wstring socket_error_text(int code);

}  // namespace iocp_chat::v1
