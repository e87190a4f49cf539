// server_connection.cpp — the ver.2 client's connection: the message-only
// window that receives WSAAsyncSelect's messages, and the frames cut from
// what arrives; see server_connection.hpp for why the window exists.
#include "server_connection.hpp"

#include <utility>
#include <vector>

#include "common/clients/win32/wide_text.hpp"
#include "iocp_chat/os_error.hpp"

namespace iocp_chat::v2 {
namespace {

/// The window class of the message-only window (RegisterClassExW).
constexpr const wchar_t* kWindowClass = L"iocp_chat_v2_connection";

}  // namespace

ServerConnection::ServerConnection(HINSTANCE instance) {
  // One window class for the program; a second registration of the same
  // class fails with ERROR_CLASS_ALREADY_EXISTS, which is fine.
  WNDCLASSEXW window_class{};
  window_class.cbSize = sizeof window_class;
  window_class.lpfnWndProc = &ServerConnection::window_proc;
  window_class.hInstance = instance;
  window_class.lpszClassName = kWindowClass;
  if (RegisterClassExW(&window_class) == 0 && GetLastError() != ERROR_CLASS_ALREADY_EXISTS) {
    throw_os_error(last_os_error(), "cannot register the connection's window class");
  }
  // HWND_MESSAGE as the parent: no size, never shown, not enumerated — a
  // window that exists only to receive messages. `this` reaches
  // window_proc as WM_NCCREATE's CREATESTRUCTW::lpCreateParams.
  window_ = CreateWindowExW(0, kWindowClass, L"", 0, 0, 0, 0, 0, HWND_MESSAGE, nullptr, instance, this);
  if (window_ == nullptr) throw_os_error(last_os_error(), "cannot create the connection's window");
}

ServerConnection::~ServerConnection() {
  listener_ = nullptr;  // nobody to tell any more
  socket_.close(L"exiting");
  DestroyWindow(window_);
}

LRESULT CALLBACK ServerConnection::window_proc(HWND window, UINT message, WPARAM wparam, LPARAM lparam) {
  if (message == WM_NCCREATE) {
    // The first message: keep the object pointer in the window's user slot.
    const auto* create = reinterpret_cast<const CREATESTRUCTW*>(lparam);
    SetWindowLongPtrW(window, GWLP_USERDATA, reinterpret_cast<LONG_PTR>(create->lpCreateParams));
  }
  auto* self = reinterpret_cast<ServerConnection*>(GetWindowLongPtrW(window, GWLP_USERDATA));
  if (message == kSocketMessage && self != nullptr) {
    // WSAAsyncSelect's message: wParam is the socket, lParam packs the
    // event and its error code; the ver.1 socket class takes it from here.
    self->socket_.handle_message(wparam, lparam);
    return 0;
  }
  return DefWindowProcW(window, message, wparam, lparam);
}

void ServerConnection::set_listener(PacketListener* listener) {
  listener_ = listener;
  deliver();  // frames that arrived while no one listened
  if (listener_ != nullptr && closed_while_away_) {
    const std::wstring reason = std::move(*closed_while_away_);
    closed_while_away_.reset();
    listener_->on_disconnected(reason);
  }
}

bool ServerConnection::connect(std::wstring_view host, std::uint16_t port) {
  frames_ = FrameAssembler{};  // a new connection is a new byte stream
  closed_while_away_.reset();
  return socket_.connect(window_, kSocketMessage, host, port);
}

bool ServerConnection::send(std::span<const Packet> packets) {
  // Encode everything first, then queue it as one run: either every piece
  // of a long line goes out, in order, or none does.
  std::vector<std::byte> frames;
  for (const Packet& packet : packets) encode(packet, frames);
  return socket_.send(std::string_view(reinterpret_cast<const char*>(frames.data()), frames.size()));
}

void ServerConnection::on_socket_connected() {
  if (listener_ != nullptr) listener_->on_connected();
}

void ServerConnection::on_socket_received(std::string_view bytes) {
  frames_.feed(std::as_bytes(std::span<const char>(bytes.data(), bytes.size())));
  deliver();
}

void ServerConnection::on_socket_closed(std::wstring_view reason) {
  // Frames received before the close are still delivered first (the
  // server's last words, e.g. ERROR SLOW_CONSUMER); then the close.
  deliver();
  if (listener_ != nullptr) {
    listener_->on_disconnected(reason);
  } else {
    closed_while_away_ = std::wstring(reason);
  }
}

void ServerConnection::deliver() {
  // The listener may change while it handles a packet (the login dialog
  // steps aside after LOGIN_RESPONSE OK), so it is read anew each time.
  while (listener_ != nullptr) {
    std::span<const std::byte> frame;
    ErrorCode error = ErrorCode::malformed_frame;
    switch (frames_.next(frame, error)) {
      case FrameAssembler::Status::need_more:
        return;
      case FrameAssembler::Status::error:
        reject_stream(L"the server sent a bad frame header (" + v1::wide_from_utf8(to_string(error)) + L")");
        return;
      case FrameAssembler::Status::frame:
        break;
    }
    Decoded decoded = decode(frame);
    if (!decoded.packet) {
      reject_stream(L"the server sent a bad frame (" + v1::wide_from_utf8(to_string(decoded.error)) + L")");
      return;
    }
    listener_->on_packet(*decoded.packet);
  }
}

void ServerConnection::reject_stream(std::wstring_view what) {
  frames_ = FrameAssembler{};  // nothing after a bad frame can be trusted
  if (state() != v1::AsyncClientSocket::State::kClosed) {
    socket_.close(what);
  } else if (listener_ != nullptr) {
    listener_->on_disconnected(what);
  }
}

}  // namespace iocp_chat::v2
