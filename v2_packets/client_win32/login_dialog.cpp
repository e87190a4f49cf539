// login_dialog.cpp — the ver.2 login dialog: connect, send the login-ID
// packet, and react to LOGIN_RESPONSE; see login_dialog.hpp.
//
// WinAPI calls used: EndDialog (DialogBoxParamW and the dialog procedure
// are ModalDialog's: common/clients/win32/modal_dialog.hpp),
// GetDlgItemTextW / SetDlgItemTextW / GetDlgItemInt (the fields),
// EnableWindow (what can be pressed while a login is under way),
// EM_SETSEL + SetFocus (the id selected again after a refusal).
#include "login_dialog.hpp"

#include <iterator>
#include <type_traits>
#include <utility>
#include <variant>

#include "chat_text.hpp"
#include "common/clients/win32/wide_text.hpp"
#include "resource.h"

namespace iocp_chat::v2 {
namespace {

using v1::utf8_from_wide;
using v1::wide_from_utf8;

/// The id box takes at most this many characters (UTF-16 units); the byte
/// limit (kUserIdSize, in UTF-8) is checked on Login.
constexpr WPARAM kMaxIdChars = 16;

}  // namespace

LoginDialog::LoginDialog(ServerConnection& connection, v1::Transcript& transcript, LoginOptions options)
    : ModalDialog(IDD_LOGIN),
      connection_(connection),
      transcript_(transcript),
      options_(std::move(options)) {}

LoginDialog::~LoginDialog() {
  if (connection_.listener() == this) connection_.set_listener(nullptr);
}

INT_PTR LoginDialog::handle_message(UINT message, WPARAM wparam, LPARAM lparam) {
  static_cast<void>(lparam);
  switch (message) {
    case WM_INITDIALOG:
      on_init_dialog();
      return FALSE;  // FALSE: we placed the keyboard focus ourselves

    case WM_COMMAND:
      // Enter "clicks" the default button (IDC_LOGIN); Esc and the close
      // box send IDCANCEL.
      if (HIWORD(wparam) != BN_CLICKED) return FALSE;
      switch (LOWORD(wparam)) {
        case IDC_LOGIN:
        case IDOK:
          on_login_button();
          return TRUE;
        case IDCANCEL:
          EndDialog(window(), IDCANCEL);
          return TRUE;
        default:
          return FALSE;
      }

    default:
      return FALSE;  // not ours: the dialog manager's default handling
  }
}

void LoginDialog::on_init_dialog() {
  connection_.set_listener(this);
  SetDlgItemTextW(window(), IDC_HOST, options_.host.c_str());
  SetDlgItemInt(window(), IDC_PORT, options_.port, FALSE);
  SetDlgItemTextW(window(), IDC_USER_ID, options_.user_id.c_str());
  SendDlgItemMessageW(window(), IDC_USER_ID, EM_SETLIMITTEXT, kMaxIdChars, 0);
  update_controls();
  SetFocus(GetDlgItem(window(), IDC_USER_ID));
  if (options_.login_at_start) on_login_button();
}

void LoginDialog::on_login_button() {
  if (waiting_) return;  // one login at a time

  // The id as the user typed it, in UTF-8 as it goes on the wire. Only what
  // cannot be encoded at all is refused here; whether it is a valid id
  // (no space, no control character) is the server's to say: INVALID_ID.
  // All of it (GetWindowTextLengthW): an over-long --id must be refused,
  // not silently cut to the box's limit.
  HWND id_box = GetDlgItem(window(), IDC_USER_ID);
  std::wstring typed(static_cast<std::size_t>(GetWindowTextLengthW(id_box)) + 1, L'\0');
  typed.resize(
      static_cast<std::size_t>(GetWindowTextW(id_box, typed.data(), static_cast<int>(typed.size()))));
  const std::string id = utf8_from_wide(typed);
  if (id.empty() || id.size() > kUserIdSize) {
    // Words shared with the console client (chat_text.hpp).
    retry_with_new_id(L"cannot log in with this id: " + wide_from_utf8(v2_client::id_problem(id)));
    return;
  }
  requested_id_ = id;

  if (connection_.state() == v1::AsyncClientSocket::State::kConnected) {
    // Still connected after ID_TAKEN or INVALID_ID: try again on it.
    send_login();
    return;
  }
  wchar_t host[256] = {};
  GetDlgItemTextW(window(), IDC_HOST, host, static_cast<int>(std::size(host)));
  BOOL port_ok = FALSE;
  const UINT port = GetDlgItemInt(window(), IDC_PORT, &port_ok, FALSE);
  if (!port_ok || port == 0 || port > 65535) {
    show_status(L"the port must be a number from 1 to 65535");
    return;
  }
  waiting_ = true;
  if (connection_.connect(host, static_cast<std::uint16_t>(port))) {
    show_status(L"connecting to " + connection_.server_name());
  }
  update_controls();  // (a failed connect reported itself through on_disconnected)
}

void LoginDialog::on_connected() {
  show_status(L"connected to " + connection_.server_name());
  send_login();
}

void LoginDialog::send_login() {
  if (!connection_.send(LoginRequest{requested_id_})) {
    waiting_ = false;
    update_controls();
    show_status(L"cannot send the login: not connected");
    return;
  }
  waiting_ = true;
  update_controls();
  show_status(L"logging in as " + wide_from_utf8(requested_id_));
}

void LoginDialog::on_packet(const Packet& packet) {
  std::visit(
      [this](const auto& received) {
        using Type = std::decay_t<decltype(received)>;
        if constexpr (std::is_same_v<Type, LoginResponse>) {
          on_login_response(received);
        } else if constexpr (std::is_same_v<Type, ErrorPacket>) {
          // SERVER_FULL, typically; the server closes the connection next.
          show_status(wide_from_utf8(v2_client::describe_error(received.code)));
        } else {
          // Chat and presence frames go to logged-in clients only.
          show_status(L"unexpected " + wide_from_utf8(to_string(type_of(Packet(received)))) +
                      L" before the login");
        }
      },
      packet);
}

// [login-response]
void LoginDialog::on_login_response(const LoginResponse& response) {
  waiting_ = false;
  // The words for each status are the console client's (chat_text.hpp).
  const std::wstring verdict = wide_from_utf8(v2_client::describe_login(response.status, requested_id_));
  switch (response.status) {
    case LoginStatus::ok:
      user_id_ = requested_id_;
      show_status(verdict);
      // Step aside before closing: packets that follow in the same read
      // wait in the connection until the chat dialog listens.
      connection_.set_listener(nullptr);
      EndDialog(window(), IDOK);
      return;
    case LoginStatus::id_taken:
    case LoginStatus::invalid_id:
    case LoginStatus::try_later:  // a ver.3 node that cannot reach its cluster now
      // The connection stays open: the next Login tries again on it.
      retry_with_new_id(verdict);
      return;
    case LoginStatus::already_logged_in:
      break;  // cannot happen with one LOGIN_REQUEST at a time
  }
  // Unexpected: start over on a new connection.
  connection_.close(verdict);
}
// [login-response]

void LoginDialog::on_disconnected(std::wstring_view reason) {
  // The next Login connects again (server and port can be changed now).
  waiting_ = false;
  retry_with_new_id(reason);
}

void LoginDialog::retry_with_new_id(std::wstring_view why) {
  update_controls();
  show_status(why);
  // The id is selected, so typing replaces it.
  HWND id_box = GetDlgItem(window(), IDC_USER_ID);
  SetFocus(id_box);
  SendMessageW(id_box, EM_SETSEL, 0, -1);
}

void LoginDialog::show_status(std::wstring_view text) {
  const std::wstring line(text);  // SetDlgItemTextW needs a NUL-terminated string
  SetDlgItemTextW(window(), IDC_LOGIN_STATUS, line.c_str());
  // The transcript marks status lines with "* ", as the chat dialog's list does.
  transcript_.write_line(L"* " + line);
}

void LoginDialog::update_controls() {
  // Server and port can change only while there is no connection; nothing
  // can change while a login is under way.
  const bool closed = connection_.state() == v1::AsyncClientSocket::State::kClosed;
  EnableWindow(GetDlgItem(window(), IDC_HOST), closed && !waiting_);
  EnableWindow(GetDlgItem(window(), IDC_PORT), closed && !waiting_);
  EnableWindow(GetDlgItem(window(), IDC_USER_ID), !waiting_);
  EnableWindow(GetDlgItem(window(), IDC_LOGIN), !waiting_);
}

}  // namespace iocp_chat::v2
