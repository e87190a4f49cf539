// chat_dialog.hpp — the ver.1 WinAPI chat client: one dialog, one socket.
//
// WinAPI idea: WSAAsyncSelect — the socket's events delivered as window
// messages. The client never blocks and never starts a thread: Winsock posts
// kSocketMessage to this dialog whenever the socket can be read, can take
// more bytes, has finished connecting or was closed by the peer, and the
// dialog hands the message to its AsyncClientSocket (async_client_socket.hpp,
// which handles WSAAsyncSelect's traps). Those messages arrive through the
// same message loop as clicks and key presses, so the whole program is one
// thread reacting to one queue of events.
//
// This is the client side of the original 2018 design ("WSAAsyncSelect for
// asynchronous send/receive, a message queue of what to send"); the server
// side of the completion model is in v1_basic_broadcast/server/.
//
// The dialog plumbing itself (DialogBoxParamW, the static dialog procedure,
// the object kept in DWLP_USER) is written once, in ModalDialog
// (common/clients/win32/modal_dialog.hpp), for this dialog and ver.2's two;
// this class keeps only what is its own: the messages it handles and what
// they do.
#pragma once

// Winsock 2 first: windows.h would otherwise bring the old winsock.h.
#include <winsock2.h>

#include <windows.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "common/clients/win32/async_client_socket.hpp"
#include "common/clients/win32/modal_dialog.hpp"
#include "common/clients/win32/transcript.hpp"
#include "line_assembler.hpp"

namespace iocp_chat::v1 {

/// What the command line chose; the dialog's fields start with these values.
struct ClientOptions {
  std::wstring host = L"127.0.0.1";  ///< Server address (IPv4 name or number).
  std::uint16_t port = 42006;        ///< The original program's port.
  bool connect_at_start = false;     ///< --connect: press Connect for the user.
  std::wstring log_path;             ///< --log: copy of every shown line (tests).
};

/// The chat window: owns the connection and the transcript; lives exactly
/// as long as the modal dialog that run() (from ModalDialog) shows.
class ChatDialog final : public ModalDialog<ChatDialog>, private SocketEvents {
 public:
  /// Keeps the options; opens the --log transcript if one was asked for.
  explicit ChatDialog(ClientOptions options);
  ~ChatDialog() = default;
  ChatDialog(const ChatDialog&) = delete;
  ChatDialog& operator=(const ChatDialog&) = delete;

 private:
  /// ModalDialog's dialog procedure hands every message to handle_message.
  friend class ModalDialog<ChatDialog>;

  /// The window message Winsock posts for socket events (WSAAsyncSelect's
  /// wMsg). WM_APP and above are free for a program's own messages.
  static constexpr UINT kSocketMessage = WM_APP + 1;

  INT_PTR handle_message(UINT message, WPARAM wparam, LPARAM lparam);

  // User interface events (WM_INITDIALOG, WM_COMMAND).
  void on_init_dialog();
  void on_connect_button();
  void on_send_button();

  // The connection: start it, and hear from it (SocketEvents).
  void start_connect();
  void on_socket_connected() override;
  void on_socket_received(std::string_view bytes) override;
  void on_socket_closed(std::wstring_view reason) override;

  // Showing text.
  void show_received(std::string_view bytes);
  void show_line(std::wstring_view line);
  void show_status(std::wstring_view text);
  void update_controls();

  ClientOptions options_;         ///< Start-up settings.
  AsyncClientSocket connection_;  ///< The socket and its outbound byte queue.
  LineAssembler incoming_;        ///< Received bytes until their "\n" arrives.
  Transcript transcript_;         ///< --log file (inactive without --log).
};

}  // namespace iocp_chat::v1
