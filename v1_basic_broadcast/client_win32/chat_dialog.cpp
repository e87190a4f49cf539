// chat_dialog.cpp — the ver.1 WinAPI client's dialog procedure: controls,
// the socket driven by WSAAsyncSelect, and the traps that come with it.
//
// WinAPI ideas shown here:
//  - Dialogs from resources: DialogBoxParamW builds the window from the
//    IDD_CHAT template in client_win32.rc and runs a modal message loop
//    (GetMessage, IsDialogMessage, DispatchMessage) until EndDialog. Every
//    event — a click, the Enter key, a socket event — reaches dialog_proc
//    through that loop, one at a time, on this one thread.
//  - WSAAsyncSelect: Winsock posts kSocketMessage with the socket in wParam
//    and the event (FD_CONNECT, FD_READ, FD_WRITE, FD_CLOSE) and its error
//    code in lParam. The call also makes the socket non-blocking, so connect,
//    send and recv return WSAEWOULDBLOCK instead of waiting.
//
// The four traps of WSAAsyncSelect, and where they are handled:
//  1. FD_WRITE is not "you may send now" but "you may send again": it comes
//     once after the connect and then only after a send failed with
//     WSAEWOULDBLOCK. So what the user types goes into an outbound byte
//     queue, flush_outbound() sends as much as Winsock takes, and FD_WRITE
//     calls it again for the rest.
//  2. FD_CLOSE can arrive while received bytes are still unread in the
//     socket. on_peer_closed() reads everything before closing, or the
//     server's last words would be lost.
//  3. Messages already posted for a socket still arrive after closesocket.
//     on_socket_message() ignores any whose wParam is not the current
//     socket, and close_connection() also removes the queued ones (a new
//     socket may get the old handle value back).
//  4. Bytes arrive in arbitrary pieces; a piece may end in the middle of a
//     line or of a UTF-8 character. LineAssembler holds them until "\n".
#include "chat_dialog.hpp"

#include <ws2tcpip.h>

#include <cstring>
#include <iterator>
#include <utility>

#include "iocp_chat/os_error.hpp"
#include "resource.h"
#include "wide_text.hpp"

namespace iocp_chat::v1 {
namespace {

/// The most bytes the client keeps queued for sending. The user cannot type
/// that fast, but a bound is the rule for every queue in this project.
constexpr std::size_t kMaxOutboundBytes = 1024 * 1024;

/// The most bytes handed to one send() call.
constexpr std::size_t kMaxSendChunk = 64 * 1024;

/// Bytes read by one recv() call; Winsock posts FD_READ again if more wait.
constexpr int kReceiveBufferBytes = 4096;

/// The list box keeps the newest lines only.
constexpr LRESULT kMaxShownLines = 1000;

/// The edit box takes at most this many characters per line.
constexpr WPARAM kMaxInputChars = 1000;

/// The OS's words for a Winsock error code, e.g. "Connection refused (10061)".
std::wstring error_text(int code) { return wide_from_utf8(os_error(code).message()); }

}  // namespace

ChatDialog::ChatDialog(ClientOptions options) : options_(std::move(options)) {
  if (!options_.log_path.empty()) {
    // FILE_APPEND_DATA: every WriteFile lands at the current end of the file,
    // and there is no user-space buffer, so a test reading the file sees each
    // line as soon as it is shown.
    transcript_ = CreateFileW(options_.log_path.c_str(), FILE_APPEND_DATA, FILE_SHARE_READ | FILE_SHARE_WRITE,
                              nullptr, OPEN_ALWAYS, FILE_ATTRIBUTE_NORMAL, nullptr);
    if (transcript_ == INVALID_HANDLE_VALUE) {
      throw_os_error(last_os_error(), "cannot open the --log file");
    }
  }
}

ChatDialog::~ChatDialog() {
  if (socket_ != INVALID_SOCKET) closesocket(socket_);
  if (transcript_ != INVALID_HANDLE_VALUE) CloseHandle(transcript_);
}

INT_PTR ChatDialog::run(HINSTANCE instance) {
  // The last argument reaches dialog_proc as WM_INITDIALOG's lParam: that is
  // how the static window procedure finds this object.
  return DialogBoxParamW(instance, MAKEINTRESOURCEW(IDD_CHAT), nullptr, &ChatDialog::dialog_proc,
                         reinterpret_cast<LPARAM>(this));
}

INT_PTR CALLBACK ChatDialog::dialog_proc(HWND window, UINT message, WPARAM wparam, LPARAM lparam) {
  if (message == WM_INITDIALOG) {
    // Keep the object pointer in the window's DWLP_USER slot for later messages.
    SetWindowLongPtrW(window, DWLP_USER, lparam);
    reinterpret_cast<ChatDialog*>(lparam)->window_ = window;
  }
  auto* self = reinterpret_cast<ChatDialog*>(GetWindowLongPtrW(window, DWLP_USER));
  if (self == nullptr) return FALSE;  // a message before WM_INITDIALOG (WM_SETFONT)
  return self->handle_message(message, wparam, lparam);
}

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
          EndDialog(window_, 0);  // leaves DialogBoxParamW's loop; the destructor closes the socket
          return TRUE;
        default:
          return FALSE;
      }

    case kSocketMessage:
      // WSAAsyncSelect's message: wParam is the socket, lParam packs the
      // event (low word) and its error code (high word).
      on_socket_message(static_cast<SOCKET>(wparam), WSAGETSELECTEVENT(lparam), WSAGETSELECTERROR(lparam));
      return TRUE;

    default:
      return FALSE;  // not ours: the dialog manager's default handling
  }
}

void ChatDialog::on_init_dialog() {
  SetDlgItemTextW(window_, IDC_HOST, options_.host.c_str());
  SetDlgItemInt(window_, IDC_PORT, options_.port, FALSE);
  SendDlgItemMessageW(window_, IDC_MESSAGE, EM_SETLIMITTEXT, kMaxInputChars, 0);
  update_controls();
  SetFocus(GetDlgItem(window_, IDC_MESSAGE));
  if (options_.connect_at_start) start_connect();
}

void ChatDialog::on_connect_button() {
  if (state_ == State::kDisconnected) {
    start_connect();
  } else {
    close_connection(L"disconnected");
  }
}

void ChatDialog::on_send_button() {
  if (state_ != State::kConnected) {
    show_status(L"not connected: press Connect first");
    return;
  }
  HWND edit = GetDlgItem(window_, IDC_MESSAGE);
  std::wstring text(static_cast<std::size_t>(GetWindowTextLengthW(edit)) + 1, L'\0');
  text.resize(static_cast<std::size_t>(GetWindowTextW(edit, text.data(), static_cast<int>(text.size()))));
  if (text.empty()) return;

  // The wire format of ver.1: the typed text in UTF-8, ended by "\n".
  std::string line = utf8_from_wide(text);
  line.push_back('\n');
  if (outbound_.size() + line.size() > kMaxOutboundBytes) {
    show_status(L"the send queue is full; try again in a moment");
    return;  // the text stays in the edit box
  }
  outbound_ += line;
  SetWindowTextW(edit, L"");
  // Not shown here: the server echoes every line to its sender too, and the
  // echo is what appears in the list — proof that the line went round.
  flush_outbound();
}

void ChatDialog::start_connect() {
  wchar_t host[256] = {};
  GetDlgItemTextW(window_, IDC_HOST, host, static_cast<int>(std::size(host)));
  BOOL port_ok = FALSE;
  const UINT port = GetDlgItemInt(window_, IDC_PORT, &port_ok, FALSE);
  if (!port_ok || port == 0 || port > 65535) {
    show_status(L"the port must be a number from 1 to 65535");
    return;
  }
  server_name_ = std::wstring(host) + L":" + std::to_wstring(port);

  // Name to address. GetAddrInfoW blocks, which is fine for a number or a
  // local name; explicit hints because Wine leaves the socket type 0
  // without them. IPv4 only, like the original program.
  ADDRINFOW hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  ADDRINFOW* found = nullptr;
  if (const int status = GetAddrInfoW(host, std::to_wstring(port).c_str(), &hints, &found); status != 0) {
    show_status(L"cannot resolve " + std::wstring(host) + L": " + error_text(status));
    return;
  }
  sockaddr_in address{};
  std::memcpy(&address, found->ai_addr, sizeof address);
  FreeAddrInfoW(found);

  const SOCKET new_socket = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (new_socket == INVALID_SOCKET) {
    show_status(L"socket failed: " + error_text(WSAGetLastError()));
    return;
  }
  // From here on the socket is non-blocking and reports to this window.
  // Register before connect() so that FD_CONNECT cannot be missed.
  if (WSAAsyncSelect(new_socket, window_, kSocketMessage, FD_CONNECT | FD_READ | FD_WRITE | FD_CLOSE) ==
      SOCKET_ERROR) {
    show_status(L"WSAAsyncSelect failed: " + error_text(WSAGetLastError()));
    closesocket(new_socket);
    return;
  }
  socket_ = new_socket;
  state_ = State::kConnecting;
  update_controls();
  show_status(L"connecting to " + server_name_);

  // A non-blocking connect answers WSAEWOULDBLOCK at once; the outcome
  // arrives later as FD_CONNECT with its error code.
  if (connect(socket_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == SOCKET_ERROR) {
    if (const int error = WSAGetLastError(); error != WSAEWOULDBLOCK) {
      close_connection(L"cannot connect to " + server_name_ + L": " + error_text(error));
    }
  }
}

void ChatDialog::on_socket_message(SOCKET socket, int event, int error) {
  // Trap 3: a message posted before the last closesocket, for a socket we
  // no longer have. Acting on it would touch a closed (or reused) handle.
  if (socket == INVALID_SOCKET || socket != socket_) return;

  switch (event) {
    case FD_CONNECT:
      on_connected(error);
      break;
    case FD_READ:
      if (error != 0) {
        close_connection(L"connection lost: " + error_text(error));
      } else {
        on_readable();
      }
      break;
    case FD_WRITE:
      // Trap 1: room in the send buffer again — send what is still queued.
      if (error == 0) flush_outbound();
      break;
    case FD_CLOSE:
      on_peer_closed(error);
      break;
    default:
      break;
  }
}

void ChatDialog::on_connected(int error) {
  if (error != 0) {
    close_connection(L"cannot connect to " + server_name_ + L": " + error_text(error));
    return;
  }
  state_ = State::kConnected;
  update_controls();
  show_status(L"connected to " + server_name_);
  flush_outbound();
}

void ChatDialog::on_readable() {
  // One recv per FD_READ, as Winsock expects: if bytes remain, it posts
  // FD_READ again. Reading in a loop here would only earn FD_READs that find
  // nothing (harmless, but confusing to watch).
  receive_once();
}

void ChatDialog::on_peer_closed(int error) {
  // Trap 2: the peer's FIN can be reported before we read the bytes that
  // came before it. Read until recv says "end of stream" (0), then close.
  while (socket_ != INVALID_SOCKET && receive_once()) {
  }
  if (socket_ == INVALID_SOCKET) return;  // a receive error closed it already
  close_connection(error == 0 ? std::wstring(L"the server closed the connection")
                              : L"connection lost: " + error_text(error));
}

bool ChatDialog::receive_once() {
  char buffer[kReceiveBufferBytes];
  const int received = recv(socket_, buffer, kReceiveBufferBytes, 0);
  if (received > 0) {
    show_received(std::string_view(buffer, static_cast<std::size_t>(received)));
    return true;
  }
  if (received == 0) return false;  // end of stream: FD_CLOSE reports it
  if (const int error = WSAGetLastError(); error != WSAEWOULDBLOCK) {
    close_connection(L"receive failed: " + error_text(error));
  }
  return false;  // WSAEWOULDBLOCK: nothing more for now
}

void ChatDialog::flush_outbound() {
  if (state_ != State::kConnected) return;
  while (!outbound_.empty()) {
    const std::size_t chunk = outbound_.size() < kMaxSendChunk ? outbound_.size() : kMaxSendChunk;
    const int sent = send(socket_, outbound_.data(), static_cast<int>(chunk), 0);
    if (sent == SOCKET_ERROR) {
      const int error = WSAGetLastError();
      // Trap 1: the socket's send buffer is full. Keep the rest queued;
      // Winsock posts FD_WRITE when there is room, and we come back here.
      if (error == WSAEWOULDBLOCK) return;
      close_connection(L"send failed: " + error_text(error));
      return;
    }
    // send may take fewer bytes than offered; drop only what it took.
    outbound_.erase(0, static_cast<std::size_t>(sent));
  }
}

void ChatDialog::close_connection(std::wstring_view reason) {
  if (socket_ == INVALID_SOCKET) return;
  // Stop the notifications (lEvent 0), close, then drop the socket messages
  // already waiting in this window's queue: they describe the old socket,
  // and a new socket could come back with the same handle value.
  WSAAsyncSelect(socket_, window_, 0, 0);
  closesocket(socket_);
  socket_ = INVALID_SOCKET;
  MSG stale{};
  while (PeekMessageW(&stale, window_, kSocketMessage, kSocketMessage, PM_REMOVE)) {
  }

  // A last line without its "\n" is still worth showing.
  if (incoming_.pending_bytes() > 0) show_line(wide_from_utf8(incoming_.take_rest()));
  outbound_.clear();
  state_ = State::kDisconnected;
  update_controls();
  show_status(reason);
}

void ChatDialog::show_received(std::string_view bytes) {
  // Trap 4: only whole lines are converted and shown.
  for (const std::string& line : incoming_.feed(bytes)) show_line(wide_from_utf8(line));
}

void ChatDialog::show_line(std::wstring_view line) {
  const std::wstring text(line);  // LB_ADDSTRING needs a NUL-terminated string
  HWND list = GetDlgItem(window_, IDC_MESSAGES);
  SendMessageW(list, LB_ADDSTRING, 0, reinterpret_cast<LPARAM>(text.c_str()));
  while (SendMessageW(list, LB_GETCOUNT, 0, 0) > kMaxShownLines) {
    SendMessageW(list, LB_DELETESTRING, 0, 0);  // forget the oldest line
  }
  // Scroll so that the newest line is visible.
  SendMessageW(list, LB_SETTOPINDEX, static_cast<WPARAM>(SendMessageW(list, LB_GETCOUNT, 0, 0) - 1), 0);

  if (transcript_ != INVALID_HANDLE_VALUE) {
    const std::string bytes = utf8_from_wide(text) + "\n";
    DWORD written = 0;
    WriteFile(transcript_, bytes.data(), static_cast<DWORD>(bytes.size()), &written, nullptr);
  }
}

void ChatDialog::show_status(std::wstring_view text) {
  // Status lines start with "* " so they cannot be mistaken for chat text.
  show_line(L"* " + std::wstring(text));
}

void ChatDialog::update_controls() {
  // Address and port can change only while there is no connection.
  const bool idle = state_ == State::kDisconnected;
  EnableWindow(GetDlgItem(window_, IDC_HOST), idle);
  EnableWindow(GetDlgItem(window_, IDC_PORT), idle);
  const wchar_t* label = idle ? L"Connect" : state_ == State::kConnecting ? L"Cancel" : L"Disconnect";
  SetDlgItemTextW(window_, IDC_CONNECT, label);
}

}  // namespace iocp_chat::v1
