// server_connection.hpp — the ver.2 client's one connection to the server:
// the WSAAsyncSelect socket both stages' clients share
// (common/clients/win32/), plus frames, plus a home that outlives the
// dialogs.
//
// WinAPI idea: a message-only window (CreateWindowExW with parent
// HWND_MESSAGE). ver.2 has two dialogs — login, then chat — but one
// connection that must survive the change: the login happens on it, and the
// chat goes on over it. If WSAAsyncSelect posted to the login dialog, the
// events that arrive while it closes (a FD_READ, a FD_CLOSE) would be lost
// with its window, and a lost FD_READ stops all further reading. So the
// socket reports to an invisible window owned by this object instead, which
// lives from start to exit; whichever dialog's modal loop is running
// dispatches its messages (DialogBoxParamW's loop dispatches every message of
// the thread, not only the dialog's).
//
// Idea from the protocol: the bytes that arrive are fed to a FrameAssembler
// (packets.hpp), which cuts them into whole frames however TCP split or
// merged them, and each frame is decoded into a Packet for the dialog on
// screen (the PacketListener). Frames that arrive while no dialog listens
// (between the two) wait in the assembler.
#pragma once

// Winsock 2 first: windows.h would otherwise bring the old winsock.h.
#include <winsock2.h>

#include <windows.h>

#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "common/clients/win32/async_client_socket.hpp"
#include "common/protocol/packets.hpp"

namespace iocp_chat::v2 {

/// What the dialog on screen hears from the connection.
class PacketListener {
 public:
  /// The TCP connection is up; the login can be sent.
  virtual void on_connected() = 0;
  /// One packet from the server, decoded.
  virtual void on_packet(const Packet& packet) = 0;
  /// The connection is over, or never came about; `reason` in words.
  virtual void on_disconnected(std::wstring_view reason) = 0;

 protected:
  ~PacketListener() = default;  ///< Not deleted through this interface.
};

/// The connection to the ver.2 server: socket, frames, and the listener.
class ServerConnection final : private v1::SocketEvents {
 public:
  /// Creates the message-only window (RegisterClassExW, CreateWindowExW);
  /// throws std::system_error if it cannot.
  explicit ServerConnection(HINSTANCE instance);
  /// Closes the connection (no event) and destroys the window.
  ~ServerConnection();
  ServerConnection(const ServerConnection&) = delete;
  ServerConnection& operator=(const ServerConnection&) = delete;

  /// Makes `listener` the receiver of every event (nullptr: none for now).
  /// A new listener first gets the packets that waited, then a close that
  /// happened meanwhile.
  void set_listener(PacketListener* listener);
  /// The current receiver of events, or nullptr.
  PacketListener* listener() const noexcept { return listener_; }

  /// Starts connecting; true while under way, false after on_disconnected.
  bool connect(std::wstring_view host, std::uint16_t port);

  /// Queues the frames of `packets`, all or none, in order. False if there
  /// is no connection or the outbound queue is full.
  bool send(std::span<const Packet> packets);
  /// Queues the frame of one packet; see above.
  bool send(const Packet& packet) { return send(std::span<const Packet>(&packet, 1)); }

  /// Closes the connection now; the listener hears on_disconnected(reason).
  void close(std::wstring_view reason) { socket_.close(reason); }

  /// Where the connection stands.
  v1::AsyncClientSocket::State state() const noexcept { return socket_.state(); }
  /// "host:port" of the last connect.
  const std::wstring& server_name() const noexcept { return socket_.server_name(); }

 private:
  /// The message Winsock posts to window_ (WSAAsyncSelect's wMsg).
  static constexpr UINT kSocketMessage = WM_APP + 1;

  static LRESULT CALLBACK window_proc(HWND window, UINT message, WPARAM wparam, LPARAM lparam);

  // v1::SocketEvents: what the socket reports.
  void on_socket_connected() override;
  void on_socket_received(std::string_view bytes) override;
  void on_socket_closed(std::wstring_view reason) override;

  /// Hands every complete frame to the listener while there is one.
  void deliver();
  /// Drops what is buffered and closes: the server's bytes are not ver.2.
  void reject_stream(std::wstring_view what);

  HWND window_ = nullptr;                          ///< The message-only window the socket reports to.
  v1::AsyncClientSocket socket_{*this};            ///< The socket and its outbound queue (shared with ver.1).
  FrameAssembler frames_;                          ///< Received bytes until a frame is whole.
  PacketListener* listener_ = nullptr;             ///< The dialog on screen, or nullptr between dialogs.
  std::optional<std::wstring> closed_while_away_;  ///< A close no listener has heard yet.
};

}  // namespace iocp_chat::v2
