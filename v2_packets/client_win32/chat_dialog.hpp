// chat_dialog.hpp — the ver.2 client's second window: the conversation,
// after a successful login, on the connection the login dialog opened.
//
// Protocol idea: the message packet. Each line typed goes out as
// CHAT_REQUESTs of at most 32 bytes (split_message cuts a longer line
// between UTF-8 characters), and what arrives are whole packets, never
// pieces of a line: CHAT_BROADCAST shown as "[id] message", USER_JOINED and
// USER_LEFT as "* id joined" / "* id left", ERROR and a closed connection
// as status lines ("* ...").
//
// WinAPI idea: the same dialog as ver.1 (a list box, an edit box, Send as
// the default button), but the socket's messages go to the connection's
// own window (server_connection.hpp), which hands this dialog packets. The
// dialog plumbing (DialogBoxParamW, the dialog procedure, the object in
// DWLP_USER) is the ModalDialog both stages' clients share
// (common/clients/win32/modal_dialog.hpp), as for the login dialog.
#pragma once

// Winsock 2 first: windows.h would otherwise bring the old winsock.h.
#include <winsock2.h>

#include <windows.h>

#include <string>
#include <string_view>

#include "common/clients/win32/modal_dialog.hpp"
#include "common/clients/win32/transcript.hpp"
#include "server_connection.hpp"

namespace iocp_chat::v2 {

/// The chat window; lives exactly as long as the modal dialog that run()
/// (from ModalDialog) shows.
class ChatDialog final : public v1::ModalDialog<ChatDialog>, private PacketListener {
 public:
  /// `connection` (logged in as `user_id`, UTF-8) and `transcript` must outlive the dialog.
  ChatDialog(ServerConnection& connection, v1::Transcript& transcript, std::string user_id);
  /// Stops listening to the connection.
  ~ChatDialog();
  ChatDialog(const ChatDialog&) = delete;
  ChatDialog& operator=(const ChatDialog&) = delete;

 private:
  /// ModalDialog's dialog procedure hands every message to handle_message.
  friend class v1::ModalDialog<ChatDialog>;

  INT_PTR handle_message(UINT message, WPARAM wparam, LPARAM lparam);

  // User interface events (WM_INITDIALOG, WM_COMMAND).
  void on_init_dialog();
  void on_send_button();

  // PacketListener: the connection's events.
  void on_connected() override;
  void on_packet(const Packet& packet) override;
  void on_disconnected(std::wstring_view reason) override;

  // Showing text.
  void show_line(std::wstring_view line);
  void show_status(std::wstring_view text);

  ServerConnection& connection_;  ///< Logged in; shared with the login dialog before.
  v1::Transcript& transcript_;    ///< --log: every line of the list is copied there.
  std::string user_id_;           ///< Who this client is (UTF-8), for the header line.
};

}  // namespace iocp_chat::v2
