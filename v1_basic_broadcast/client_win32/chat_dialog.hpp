// chat_dialog.hpp — the ver.1 WinAPI chat client: one dialog, one socket.
//
// WinAPI idea: WSAAsyncSelect — the socket's events delivered as window
// messages. The client never blocks and never starts a thread: it asks
// Winsock to post kSocketMessage to the dialog whenever the socket can be
// read (FD_READ), can take more bytes (FD_WRITE), has finished connecting
// (FD_CONNECT) or was closed by the peer (FD_CLOSE). Those messages arrive
// through the same message loop as clicks and key presses, so the whole
// program is one thread reacting to one queue of events.
//
// This is the client side of the original 2018 design ("WSAAsyncSelect for
// asynchronous send/receive, a message queue of what to send"); the server
// side of the completion model is in v1_basic_broadcast/server/.
#pragma once

// Winsock 2 first: windows.h would otherwise bring the old winsock.h.
#include <winsock2.h>

#include <windows.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "line_assembler.hpp"

namespace iocp_chat::v1 {

/// What the command line chose; the dialog's fields start with these values.
struct ClientOptions {
  std::wstring host = L"127.0.0.1";  ///< Server address (IPv4 name or number).
  std::uint16_t port = 42006;        ///< The original program's port.
  bool connect_at_start = false;     ///< --connect: press Connect for the user.
  std::wstring log_path;             ///< --log: copy of every shown line (tests).
};

/// The chat window: owns the socket, the outbound byte queue and the
/// transcript; lives exactly as long as the modal dialog.
class ChatDialog {
 public:
  explicit ChatDialog(ClientOptions options);
  ~ChatDialog();
  ChatDialog(const ChatDialog&) = delete;
  ChatDialog& operator=(const ChatDialog&) = delete;

  /// Shows the dialog and runs its message loop until it is closed
  /// (DialogBoxParamW); returns the dialog's result, -1 if it could not open.
  INT_PTR run(HINSTANCE instance);

 private:
  /// Where the connection stands; decides what the buttons do.
  enum class State { kDisconnected, kConnecting, kConnected };

  /// The window message Winsock posts for socket events (WSAAsyncSelect's
  /// wMsg). WM_APP and above are free for a program's own messages.
  static constexpr UINT kSocketMessage = WM_APP + 1;

  static INT_PTR CALLBACK dialog_proc(HWND window, UINT message, WPARAM wparam, LPARAM lparam);
  INT_PTR handle_message(UINT message, WPARAM wparam, LPARAM lparam);

  // User interface events (WM_INITDIALOG, WM_COMMAND).
  void on_init_dialog();
  void on_connect_button();
  void on_send_button();

  // Socket events (kSocketMessage: WSAGETSELECTEVENT / WSAGETSELECTERROR).
  void on_socket_message(SOCKET socket, int event, int error);
  void on_connected(int error);
  void on_readable();
  void on_peer_closed(int error);

  // The connection.
  void start_connect();
  void flush_outbound();
  bool receive_once();
  void close_connection(std::wstring_view reason);

  // Showing text.
  void show_received(std::string_view bytes);
  void show_line(std::wstring_view line);
  void show_status(std::wstring_view text);
  void update_controls();

  ClientOptions options_;                     ///< Start-up settings.
  HWND window_ = nullptr;                     ///< The dialog, once WM_INITDIALOG ran.
  SOCKET socket_ = INVALID_SOCKET;            ///< The one connection; INVALID_SOCKET when none.
  State state_ = State::kDisconnected;        ///< What socket_ is doing.
  std::wstring server_name_;                  ///< "host:port" for status lines.
  std::string outbound_;                      ///< Bytes accepted from the user, not yet taken by send().
  LineAssembler incoming_;                    ///< Received bytes until their "\n" arrives.
  HANDLE transcript_ = INVALID_HANDLE_VALUE;  ///< --log file, or INVALID_HANDLE_VALUE.
};

}  // namespace iocp_chat::v1
