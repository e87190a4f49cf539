// async_client_socket.cpp — a client socket driven by WSAAsyncSelect, and
// the traps that come with it; shared by both stages' WinAPI clients
// (iocp_chat::win32_client).
//
// WSAAsyncSelect posts the owner's message with the socket in wParam and
// the event (FD_CONNECT, FD_READ, FD_WRITE, FD_CLOSE) and its error code in
// lParam. The call also makes the socket non-blocking, so connect, send and
// recv return WSAEWOULDBLOCK instead of waiting.
//
// The traps of WSAAsyncSelect, and where they are handled:
//  1. FD_WRITE is not "you may send now" but "you may send again": it comes
//     once after the connect and then only after a send failed with
//     WSAEWOULDBLOCK. So what the owner sends goes into an outbound byte
//     queue, flush_outbound() sends as much as Winsock takes, and FD_WRITE
//     calls it again for the rest.
//  2. FD_CLOSE can arrive while received bytes are still unread in the
//     socket. on_peer_closed() reads everything before closing, or the
//     server's last words would be lost.
//  3. Messages already posted for a socket still arrive after closesocket.
//     handle_message() ignores any whose wParam is not the current socket,
//     and close() also removes the queued ones (a new socket may get the old
//     handle value back).
// A fourth trap is the owner's: bytes arrive in arbitrary pieces, which may
// end inside a line, a frame or a UTF-8 character (ver.1: LineAssembler,
// ver.2: FrameAssembler).
#include "async_client_socket.hpp"

#include <ws2tcpip.h>

#include <cstring>

#include "iocp_chat/os_error.hpp"
#include "wide_text.hpp"

namespace iocp_chat::v1 {
namespace {

/// The most bytes handed to one send() call.
constexpr std::size_t kMaxSendChunk = 64 * 1024;

/// Bytes read by one recv() call; Winsock posts FD_READ again if more wait.
constexpr int kReceiveBufferBytes = 4096;

}  // namespace

std::wstring socket_error_text(int code) { return wide_from_utf8(os_error(code).message()); }

AsyncClientSocket::~AsyncClientSocket() { release(); }

bool AsyncClientSocket::connect(HWND window, UINT message, std::wstring_view host, std::uint16_t port) {
  release();  // at most one connection at a time
  window_ = window;
  message_ = message;
  const std::wstring host_name(host);
  const std::wstring port_text = std::to_wstring(port);
  server_name_ = host_name + L":" + port_text;

  // Name to address. GetAddrInfoW blocks, which is fine for a number or a
  // local name; explicit hints because Wine leaves the socket type 0
  // without them. IPv4 only, like the original program.
  ADDRINFOW hints{};
  hints.ai_family = AF_INET;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_protocol = IPPROTO_TCP;
  ADDRINFOW* found = nullptr;
  if (const int status = GetAddrInfoW(host_name.c_str(), port_text.c_str(), &hints, &found); status != 0) {
    events_.on_socket_closed(L"cannot resolve " + host_name + L": " + socket_error_text(status));
    return false;
  }
  sockaddr_in address{};
  std::memcpy(&address, found->ai_addr, sizeof address);
  FreeAddrInfoW(found);

  const SOCKET new_socket = socket(AF_INET, SOCK_STREAM, IPPROTO_TCP);
  if (new_socket == INVALID_SOCKET) {
    events_.on_socket_closed(L"socket failed: " + socket_error_text(WSAGetLastError()));
    return false;
  }
  // [async-select]
  // From here on the socket is non-blocking and reports to the window.
  // Register before connect() so that FD_CONNECT cannot be missed.
  if (WSAAsyncSelect(new_socket, window_, message_, FD_CONNECT | FD_READ | FD_WRITE | FD_CLOSE) ==
      SOCKET_ERROR) {
    const int error = WSAGetLastError();
    closesocket(new_socket);
    events_.on_socket_closed(L"WSAAsyncSelect failed: " + socket_error_text(error));
    return false;
  }
  socket_ = new_socket;
  state_ = State::kConnecting;

  // A non-blocking connect answers WSAEWOULDBLOCK at once; the outcome
  // arrives later as FD_CONNECT with its error code.
  if (::connect(socket_, reinterpret_cast<const sockaddr*>(&address), sizeof address) == SOCKET_ERROR) {
    if (const int error = WSAGetLastError(); error != WSAEWOULDBLOCK) {
      close(L"cannot connect to " + server_name_ + L": " + socket_error_text(error));
      return false;
    }
  }
  return true;
  // [async-select]
}

bool AsyncClientSocket::send(std::string_view bytes) {
  if (state_ == State::kClosed || outbound_.size() + bytes.size() > kMaxOutboundBytes) return false;
  outbound_ += bytes;
  flush_outbound();
  return true;
}

// [socket-message]
void AsyncClientSocket::handle_message(WPARAM wparam, LPARAM lparam) {
  // Trap 3: a message posted before the last closesocket, for a socket we
  // no longer have. Acting on it would touch a closed (or reused) handle.
  const auto socket = static_cast<SOCKET>(wparam);
  if (socket == INVALID_SOCKET || socket != socket_) return;
  const int error = WSAGETSELECTERROR(lparam);

  switch (WSAGETSELECTEVENT(lparam)) {
    case FD_CONNECT:
      on_connected(error);
      break;
    case FD_READ:
      if (error != 0) {
        close(L"connection lost: " + socket_error_text(error));
      } else {
        // One recv per FD_READ, as Winsock expects: if bytes remain, it
        // posts FD_READ again. Reading in a loop here would only earn
        // FD_READs that find nothing (harmless, but confusing to watch).
        receive_once();
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
// [socket-message]

void AsyncClientSocket::on_connected(int error) {
  if (error != 0) {
    close(L"cannot connect to " + server_name_ + L": " + socket_error_text(error));
    return;
  }
  state_ = State::kConnected;
  events_.on_socket_connected();
  flush_outbound();
}

// [peer-closed]
void AsyncClientSocket::on_peer_closed(int error) {
  // Trap 2: the peer's FIN can be reported before we read the bytes that
  // came before it. Read until recv says "end of stream" (0), then close.
  // The owner may close the socket itself while handling what arrives.
  while (socket_ != INVALID_SOCKET && receive_once()) {
  }
  if (socket_ == INVALID_SOCKET) return;  // closed already (a receive error, or the owner)
  close(error == 0 ? std::wstring(L"the server closed the connection")
                   : L"connection lost: " + socket_error_text(error));
}
// [peer-closed]

bool AsyncClientSocket::receive_once() {
  char buffer[kReceiveBufferBytes];
  const int received = recv(socket_, buffer, kReceiveBufferBytes, 0);
  if (received > 0) {
    events_.on_socket_received(std::string_view(buffer, static_cast<std::size_t>(received)));
    return true;
  }
  if (received == 0) return false;  // end of stream: FD_CLOSE reports it
  if (const int error = WSAGetLastError(); error != WSAEWOULDBLOCK) {
    close(L"receive failed: " + socket_error_text(error));
  }
  return false;  // WSAEWOULDBLOCK: nothing more for now
}

// [flush-outbound]
void AsyncClientSocket::flush_outbound() {
  if (state_ != State::kConnected) return;  // on_connected() calls again
  while (!outbound_.empty()) {
    const std::size_t chunk = outbound_.size() < kMaxSendChunk ? outbound_.size() : kMaxSendChunk;
    const int sent = ::send(socket_, outbound_.data(), static_cast<int>(chunk), 0);
    if (sent == SOCKET_ERROR) {
      const int error = WSAGetLastError();
      // Trap 1: the socket's send buffer is full. Keep the rest queued;
      // Winsock posts FD_WRITE when there is room, and we come back here.
      if (error == WSAEWOULDBLOCK) return;
      close(L"send failed: " + socket_error_text(error));
      return;
    }
    // send may take fewer bytes than offered; drop only what it took.
    outbound_.erase(0, static_cast<std::size_t>(sent));
  }
}
// [flush-outbound]

void AsyncClientSocket::close(std::wstring_view reason) {
  if (socket_ == INVALID_SOCKET) return;
  release();
  events_.on_socket_closed(reason);
}

// [release]
void AsyncClientSocket::release() {
  if (socket_ == INVALID_SOCKET) return;
  // Stop the notifications (lEvent 0), close, then drop the socket messages
  // already waiting in the window's queue: they describe the old socket,
  // and a new socket could come back with the same handle value.
  WSAAsyncSelect(socket_, window_, 0, 0);
  closesocket(socket_);
  socket_ = INVALID_SOCKET;
  MSG stale{};
  while (PeekMessageW(&stale, window_, message_, message_, PM_REMOVE)) {
  }
  outbound_.clear();
  state_ = State::kClosed;
}
// [release]

}  // namespace iocp_chat::v1
