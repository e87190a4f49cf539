// chat_dialog.cpp — the ver.1 WinAPI client's dialog procedure: controls,
// and the socket driven by WSAAsyncSelect.
//
// WinAPI ideas shown here:
//  - Dialogs from resources: DialogBoxParamW builds the window from the
//    IDD_CHAT template in client_win32.rc and runs a modal message loop
//    (GetMessage, IsDialogMessage, DispatchMessage) until EndDialog. Every
//    event — a click, the Enter key, a socket event — reaches the dialog
//    procedure through that loop, one at a time, on this one thread, and
//    from there handle_message. The dialog procedure, and the DWLP_USER
//    slot that leads it to this object, are ModalDialog's (modal_dialog.hpp).
//  - WSAAsyncSelect: Winsock posts kSocketMessage to this dialog for every
//    socket event; the dialog passes it to its AsyncClientSocket, which
//    handles the first three traps of WSAAsyncSelect (FD_WRITE, FD_CLOSE
//    with unread data, stale messages: async_client_socket.cpp) and tells
//    the dialog what happened through SocketEvents.
//  - The fourth trap is this dialog's own: bytes arrive in arbitrary pieces;
//    a piece may end in the middle of a line or of a UTF-8 character.
//    LineAssembler holds them until "\n".
#include "chat_dialog.hpp"

#include <iterator>
#include <utility>

#include "common/clients/win32/wide_text.hpp"
#include "resource.h"

namespace iocp_chat::v1 {
namespace {

/// The list box keeps the newest lines only.
constexpr LRESULT kMaxShownLines = 1000;

/// The edit box takes at most this many characters per line.
constexpr WPARAM kMaxInputChars = 1000;

}  // namespace

ChatDialog::ChatDialog(ClientOptions options)
    : ModalDialog(IDD_CHAT),
      options_(std::move(options)),
      connection_(*this),
      transcript_(options_.log_path) {}

// [handle-message]
INT_PTR ChatDialog::handle_message(UINT message, WPARAM wparam, LPARAM lparam) {
  switch (message) {
    case WM_INITDIALOG:
      on_init_dialog();
      return FALSE;  // FALSE: we placed the keyboard focus ourselves

    case WM_COMMAND:
      // Buttons report BN_CLICKED. Enter in the dialog "clicks" the default
      // button (IDC_SEND); Esc and the close box send IDCANCEL.
      if (HIWORD(wparam) != BN_CLICKED) return FALSE;
      switch (LOWORD(wparam)) {
        case IDC_CONNECT:
          on_connect_button();
          return TRUE;
        case IDC_SEND:
          on_send_button();
          return TRUE;
        case IDCANCEL:
          EndDialog(window(), 0);  // leaves DialogBoxParamW's loop; the destructor closes the socket
          return TRUE;
        default:
          return FALSE;
      }

    case kSocketMessage:
      // WSAAsyncSelect's message: wParam is the socket, lParam packs the
      // event (low word) and its error code (high word).
      connection_.handle_message(wparam, lparam);
      return TRUE;

    default:
      return FALSE;  // not ours: the dialog manager's default handling
  }
}
// [handle-message]

void ChatDialog::on_init_dialog() {
  SetDlgItemTextW(window(), IDC_HOST, options_.host.c_str());
  SetDlgItemInt(window(), IDC_PORT, options_.port, FALSE);
  SendDlgItemMessageW(window(), IDC_MESSAGE, EM_SETLIMITTEXT, kMaxInputChars, 0);
  update_controls();
  SetFocus(GetDlgItem(window(), IDC_MESSAGE));
  if (options_.connect_at_start) start_connect();
}

void ChatDialog::on_connect_button() {
  if (connection_.state() == AsyncClientSocket::State::kClosed) {
    start_connect();
  } else {
    connection_.close(L"disconnected");
  }
}

void ChatDialog::on_send_button() {
  if (connection_.state() != AsyncClientSocket::State::kConnected) {
    show_status(L"not connected: press Connect first");
    return;
  }
  HWND edit = GetDlgItem(window(), IDC_MESSAGE);
  std::wstring text(static_cast<std::size_t>(GetWindowTextLengthW(edit)) + 1, L'\0');
  text.resize(static_cast<std::size_t>(GetWindowTextW(edit, text.data(), static_cast<int>(text.size()))));
  if (text.empty()) return;

  // The wire format of ver.1: the typed text in UTF-8, ended by "\n".
  std::string line = utf8_from_wide(text);
  line.push_back('\n');
  if (!connection_.send(line)) {
    show_status(L"the send queue is full; try again in a moment");
    return;  // the text stays in the edit box
  }
  SetWindowTextW(edit, L"");
  // Not shown here: the server echoes every line to its sender too, and the
  // echo is what appears in the list — proof that the line went round.
}

void ChatDialog::start_connect() {
  wchar_t host[256] = {};
  GetDlgItemTextW(window(), IDC_HOST, host, static_cast<int>(std::size(host)));
  BOOL port_ok = FALSE;
  const UINT port = GetDlgItemInt(window(), IDC_PORT, &port_ok, FALSE);
  if (!port_ok || port == 0 || port > 65535) {
    show_status(L"the port must be a number from 1 to 65535");
    return;
  }
  if (connection_.connect(window(), kSocketMessage, host, static_cast<std::uint16_t>(port))) {
    update_controls();
    show_status(L"connecting to " + connection_.server_name());
  }
}

void ChatDialog::on_socket_connected() {
  update_controls();
  show_status(L"connected to " + connection_.server_name());
}

void ChatDialog::on_socket_received(std::string_view bytes) { show_received(bytes); }

void ChatDialog::on_socket_closed(std::wstring_view reason) {
  // A last line without its "\n" is still worth showing.
  if (incoming_.pending_bytes() > 0) show_line(wide_from_utf8(incoming_.take_rest()));
  update_controls();
  show_status(reason);
}

// [show-received]
void ChatDialog::show_received(std::string_view bytes) {
  // Trap 4: only whole lines are converted and shown.
  for (const std::string& line : incoming_.feed(bytes)) show_line(wide_from_utf8(line));
}
// [show-received]

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
  // Status lines start with "* " so they cannot be mistaken for chat text.
  show_line(L"* " + std::wstring(text));
}

void ChatDialog::update_controls() {
  // Address and port can change only while there is no connection.
  const AsyncClientSocket::State state = connection_.state();
  const bool idle = state == AsyncClientSocket::State::kClosed;
  EnableWindow(GetDlgItem(window(), IDC_HOST), idle);
  EnableWindow(GetDlgItem(window(), IDC_PORT), idle);
  const wchar_t* label = idle                                             ? L"Connect"
                         : state == AsyncClientSocket::State::kConnecting ? L"Cancel"
                                                                          : L"Disconnect";
  SetDlgItemTextW(window(), IDC_CONNECT, label);
}

}  // namespace iocp_chat::v1
