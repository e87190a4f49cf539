// login_dialog.hpp — the ver.2 client's first window: server, port and user
// id, and a Login button, as in the original program.
//
// Protocol idea: the login-ID packet. The dialog connects, sends
// LOGIN_REQUEST with the id, and waits for LOGIN_RESPONSE: OK ends the
// dialog (the chat dialog follows, on the same connection); ID_TAKEN or
// INVALID_ID leaves it open, on the same connection, with the id selected
// for another try — the server keeps the connection for that (docs/protocol.md,
// ver.2, session rule 1).
//
// WinAPI idea: a modal dialog whose result (EndDialog's nResult, returned by
// DialogBoxParamW) tells the caller what happened: IDOK logged in, IDCANCEL
// closed by the user. The dialog plumbing (DialogBoxParamW, the dialog
// procedure, the object in DWLP_USER) is the ModalDialog both stages'
// clients share (common/clients/win32/modal_dialog.hpp), as for the chat
// dialog.
#pragma once

// Winsock 2 first: windows.h would otherwise bring the old winsock.h.
#include <winsock2.h>

#include <windows.h>

#include <cstdint>
#include <string>
#include <string_view>

#include "common/clients/win32/modal_dialog.hpp"
#include "common/clients/win32/transcript.hpp"
#include "server_connection.hpp"

namespace iocp_chat::v2 {

/// What the command line chose; the login dialog's fields start with these values.
struct LoginOptions {
  std::wstring host = L"127.0.0.1";  ///< Server address (IPv4 name or number).
  std::uint16_t port = 42006;        ///< The original program's port.
  std::wstring user_id;              ///< --id: the id field's first text.
  bool login_at_start = false;       ///< --login: press Login for the user.
};

/// The login window; lives exactly as long as the modal dialog. run()
/// (from ModalDialog) returns IDOK once the server accepted the id,
/// IDCANCEL if the user closed the dialog, -1 if it could not open.
class LoginDialog final : public v1::ModalDialog<LoginDialog>, private PacketListener {
 public:
  /// `connection` and `transcript` must outlive the dialog.
  LoginDialog(ServerConnection& connection, v1::Transcript& transcript, LoginOptions options);
  /// Stops listening to the connection.
  ~LoginDialog();
  LoginDialog(const LoginDialog&) = delete;
  LoginDialog& operator=(const LoginDialog&) = delete;

  /// The id the server accepted (UTF-8); empty unless run() returned IDOK.
  const std::string& user_id() const noexcept { return user_id_; }

 private:
  /// ModalDialog's dialog procedure hands every message to handle_message.
  friend class v1::ModalDialog<LoginDialog>;

  INT_PTR handle_message(UINT message, WPARAM wparam, LPARAM lparam);

  // User interface events (WM_INITDIALOG, WM_COMMAND).
  void on_init_dialog();
  void on_login_button();

  // PacketListener: the connection's events.
  void on_connected() override;
  void on_packet(const Packet& packet) override;
  void on_disconnected(std::wstring_view reason) override;

  void on_login_response(const LoginResponse& response);
  void send_login();
  void retry_with_new_id(std::wstring_view why);
  void show_status(std::wstring_view text);
  void update_controls();

  ServerConnection& connection_;  ///< The one connection, shared with the chat dialog.
  v1::Transcript& transcript_;    ///< --log: every status shown here is copied there too.
  LoginOptions options_;          ///< Start-up settings.
  std::string requested_id_;      ///< The id of the LOGIN_REQUEST in flight (UTF-8).
  bool waiting_ = false;          ///< Connecting or waiting for LOGIN_RESPONSE: Login is disabled.
  std::string user_id_;           ///< The id the server accepted.
};

}  // namespace iocp_chat::v2
