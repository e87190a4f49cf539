// chat_dialog.cpp — the ver.2 chat dialog: typed lines out as CHAT_REQUESTs,
// packets in as lines of the list box; see chat_dialog.hpp.
//
// WinAPI calls used: EndDialog (DialogBoxParamW and the dialog procedure
// are ModalDialog's: common/clients/win32/modal_dialog.hpp),
// GetWindowTextW / SetWindowTextW (the edit box), LB_ADDSTRING,
// LB_DELETESTRING and LB_SETTOPINDEX sent with SendMessageW (the list box),
// EnableWindow (nothing to send once the connection is gone).
#include "chat_dialog.hpp"

#include <type_traits>
#include <utility>
#include <variant>
#include <vector>

#include "chat_text.hpp"
#include "common/clients/win32/wide_text.hpp"
#include "resource.h"

namespace iocp_chat::v2 {
namespace {

using v1::utf8_from_wide;
using v1::wide_from_utf8;

/// Text from the network as it is shown: control characters made visible
/// (U+FFFD), like the console client does (v2_client::printable), then UTF-16.
std::wstring shown(std::string_view text) { return wide_from_utf8(v2_client::printable(text)); }

/// The list box keeps the newest lines only.
constexpr LRESULT kMaxShownLines = 1000;

/// The edit box takes at most this many characters per line (a long line
/// becomes many CHAT_REQUESTs).
constexpr WPARAM kMaxInputChars = 1000;

}  // namespace

ChatDialog::ChatDialog(ServerConnection& connection, v1::Transcript& transcript, std::string user_id)
    : ModalDialog(IDD_CHAT), connection_(connection), transcript_(transcript), user_id_(std::move(user_id)) {}

ChatDialog::~ChatDialog() {
  if (connection_.listener() == this) connection_.set_listener(nullptr);
}

INT_PTR ChatDialog::handle_message(UINT message, WPARAM wparam, LPARAM lparam) {
  static_cast<void>(lparam);
  switch (message) {
    case WM_INITDIALOG:
      on_init_dialog();
      return FALSE;  // FALSE: we placed the keyboard focus ourselves

    case WM_COMMAND:
      // Enter "clicks" the default button (IDC_SEND); Esc and the close box
      // send IDCANCEL.
      if (HIWORD(wparam) != BN_CLICKED) return FALSE;
      switch (LOWORD(wparam)) {
        case IDC_SEND:
        case IDOK:
          on_send_button();
          return TRUE;
        case IDCANCEL:
          // Leaves DialogBoxParamW's loop; main then destroys the connection,
          // and the server tells the others USER_LEFT.
          EndDialog(window(), IDCANCEL);
          return TRUE;
        default:
          return FALSE;
      }

    default:
      return FALSE;  // not ours: the dialog manager's default handling
  }
}

void ChatDialog::on_init_dialog() {
  const std::wstring who = L"Logged in as " + shown(user_id_) + L" at " + connection_.server_name();
  SetDlgItemTextW(window(), IDC_WHO, who.c_str());
  SendDlgItemMessageW(window(), IDC_MESSAGE, EM_SETLIMITTEXT, kMaxInputChars, 0);
  SetFocus(GetDlgItem(window(), IDC_MESSAGE));
  show_status(L"logged in as " + shown(user_id_) + L" at " + connection_.server_name());
  // Listen from now on; packets that came right after LOGIN_RESPONSE (and
  // a close, if the connection already ended) are handed over at once.
  connection_.set_listener(this);
}

// [send-button]
void ChatDialog::on_send_button() {
  if (connection_.state() != v1::AsyncClientSocket::State::kConnected) {
    show_status(L"not connected: close this window and log in again");
    return;
  }
  HWND edit = GetDlgItem(window(), IDC_MESSAGE);
  std::wstring text(static_cast<std::size_t>(GetWindowTextLengthW(edit)) + 1, L'\0');
  text.resize(static_cast<std::size_t>(GetWindowTextW(edit, text.data(), static_cast<int>(text.size()))));
  if (text.empty()) return;

  // The message field holds 32 bytes: a longer line becomes several
  // CHAT_REQUESTs, cut between UTF-8 characters. The cutting and the check
  // before it are the console client's too (chat_text.hpp), so both ver.2
  // clients send a line the same way. (Text from an edit box is always
  // valid UTF-16, so the check should never refuse it.)
  const std::string line = utf8_from_wide(text);
  if (const std::string problem = v2_client::line_problem(line); !problem.empty()) {
    show_status(L"not sent: " + wide_from_utf8(problem));
    return;
  }
  std::vector<Packet> requests;
  for (std::string& piece : v2_client::split_message(line))
    requests.emplace_back(ChatRequest{std::move(piece)});
  if (!connection_.send(requests)) {
    show_status(L"the send queue is full; try again in a moment");
    return;  // the text stays in the edit box
  }
  SetWindowTextW(edit, L"");
  // Not shown here: the server broadcasts every message to its sender too,
  // and that CHAT_BROADCAST is what appears in the list.
}
// [send-button]

void ChatDialog::on_connected() {}  // connected before this dialog opened

void ChatDialog::on_packet(const Packet& packet) {
  std::visit(
      [this](const auto& received) {
        using Type = std::decay_t<decltype(received)>;
        if constexpr (std::is_same_v<Type, ChatBroadcast>) {
          show_line(L"[" + shown(received.user_id) + L"] " + shown(received.message));
        } else if constexpr (std::is_same_v<Type, UserJoined>) {
          show_status(shown(received.user_id) + L" joined");
        } else if constexpr (std::is_same_v<Type, UserLeft>) {
          show_status(shown(received.user_id) + L" left");
        } else if constexpr (std::is_same_v<Type, ErrorPacket>) {
          // The server closes the connection next.
          show_status(wide_from_utf8(v2_client::describe_error(received.code)));
        } else {
          show_status(L"unexpected " + wide_from_utf8(to_string(type_of(Packet(received)))) +
                      L" from the server");
        }
      },
      packet);
}

void ChatDialog::on_disconnected(std::wstring_view reason) {
  show_status(reason);
  EnableWindow(GetDlgItem(window(), IDC_MESSAGE), FALSE);
  EnableWindow(GetDlgItem(window(), IDC_SEND), FALSE);
}

void ChatDialog::show_line(std::wstring_view line) {
  const std::wstring text(line);  // LB_ADDSTRING needs a NUL-terminated string
  HWND list = GetDlgItem(window(), IDC_MESSAGES);
  SendMessageW(list, LB_ADDSTRING, 0, reinterpret_cast<LPARAM>(text.c_str()));
  while (SendMessageW(list, LB_GETCOUNT, 0, 0) > kMaxShownLines) {
    SendMessageW(list, LB_DELETESTRING, 0, 0);  // forget the oldest line
  }
  // Scroll so that the newest line is visible.
  SendMessageW(list, LB_SETTOPINDEX, static_cast<WPARAM>(SendMessageW(list, LB_GETCOUNT, 0, 0) - 1), 0);
  transcript_.write_line(text);
}

void ChatDialog::show_status(std::wstring_view text) {
  // Status lines start with "* " so they cannot be mistaken for chat text
  // (an id holds no space, so "[id] ..." never starts that way).
  show_line(L"* " + std::wstring(text));
}

}  // namespace iocp_chat::v2
