// socket.cpp — Socket ownership, Winsock start-up, and the blocking helpers
// for clients and tests, on Winsock and on BSD sockets.
#include "iocp_chat/socket.hpp"

#include <cstring>
#include <string>

#include "iocp_chat/os_error.hpp"

#ifdef _WIN32
#include <mswsock.h>
#else
#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>
#endif

namespace iocp_chat {
namespace {

#ifdef _WIN32
using SendSize = int;  // Winsock's send/recv take int lengths.
constexpr int kSendFlags = 0;
#else
using SendSize = std::size_t;
constexpr int kSendFlags = MSG_NOSIGNAL;  // a closed peer is an error code, not SIGPIPE
#endif

/// getaddrinfo for a numeric or named IPv4/IPv6 TCP endpoint. Explicit hints:
/// Wine leaves the socket type 0 without them.
struct AddressList {
  addrinfo* head = nullptr;
  AddressList(const std::string& host, std::uint16_t port, bool passive) {
    addrinfo hints{};
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = passive ? AI_PASSIVE : 0;
    const std::string service = std::to_string(port);
    const int status = ::getaddrinfo(host.c_str(), service.c_str(), &hints, &head);
    if (status != 0) {
#ifdef _WIN32
      throw_os_error(os_error(status), "cannot resolve '" + host + "'");
#else
      throw std::system_error(std::error_code(status, os_category()),
                              "cannot resolve '" + host + "': " + ::gai_strerror(status));
#endif
    }
  }
  ~AddressList() {
    if (head != nullptr) ::freeaddrinfo(head);
  }
  AddressList(const AddressList&) = delete;
  AddressList& operator=(const AddressList&) = delete;
};

}  // namespace

NetworkSession::NetworkSession() {
#ifdef _WIN32
  WSADATA data{};
  if (const int status = ::WSAStartup(MAKEWORD(2, 2), &data); status != 0) {
    throw_os_error(os_error(status), "WSAStartup");
  }
#endif
}

NetworkSession::~NetworkSession() {
#ifdef _WIN32
  ::WSACleanup();
#endif
}

Socket& Socket::operator=(Socket&& other) noexcept {
  if (this != &other) {
    close();
    handle_ = other.release();
  }
  return *this;
}

NativeSocket Socket::release() noexcept {
  const NativeSocket handle = handle_;
  handle_ = kInvalidSocket;
  return handle;
}

void Socket::close() noexcept {
  if (handle_ == kInvalidSocket) return;
#ifdef _WIN32
  ::closesocket(handle_);
#else
  ::close(handle_);
#endif
  handle_ = kInvalidSocket;
}

Socket open_listener(const std::string& address, std::uint16_t port, int backlog) {
  AddressList addresses(address, port, true);
  std::error_code last_error = os_error(0);
  for (const addrinfo* entry = addresses.head; entry != nullptr; entry = entry->ai_next) {
    Socket socket(::socket(entry->ai_family, entry->ai_socktype, entry->ai_protocol));
    if (!socket.is_open()) {
      last_error = last_socket_error();
      continue;
    }
#ifndef _WIN32
    // On Windows SO_REUSEADDR would let another program steal the port; there
    // the default already allows a quick restart.
    const int on = 1;
    ::setsockopt(socket.native(), SOL_SOCKET, SO_REUSEADDR, &on, sizeof on);
#endif
    if (::bind(socket.native(), entry->ai_addr, static_cast<socklen_t>(entry->ai_addrlen)) != 0 ||
        ::listen(socket.native(), backlog) != 0) {
      last_error = last_socket_error();
      continue;
    }
    return socket;
  }
  throw_os_error(last_error, "cannot listen on " + address + ":" + std::to_string(port));
}

Socket connect_to(const std::string& host, std::uint16_t port) {
  AddressList addresses(host, port, false);
  std::error_code last_error = os_error(0);
  for (const addrinfo* entry = addresses.head; entry != nullptr; entry = entry->ai_next) {
    Socket socket(::socket(entry->ai_family, entry->ai_socktype, entry->ai_protocol));
    if (!socket.is_open()) {
      last_error = last_socket_error();
      continue;
    }
    if (::connect(socket.native(), entry->ai_addr, static_cast<socklen_t>(entry->ai_addrlen)) == 0) {
      return socket;
    }
    last_error = last_socket_error();
  }
  throw_os_error(last_error, "cannot connect to " + host + ":" + std::to_string(port));
}

std::uint16_t local_port(const Socket& socket) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getsockname(socket.native(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    throw_os_error(last_socket_error(), "getsockname");
  }
  if (address.ss_family == AF_INET6) {
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&address)->sin6_port);
  }
  return ntohs(reinterpret_cast<const sockaddr_in*>(&address)->sin_port);
}

std::string peer_name(const Socket& socket) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  if (::getpeername(socket.native(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    return "?";
  }
  char host[INET6_ADDRSTRLEN] = {};
  std::uint16_t port = 0;
  if (address.ss_family == AF_INET6) {
    const auto* v6 = reinterpret_cast<const sockaddr_in6*>(&address);
    ::inet_ntop(AF_INET6, &v6->sin6_addr, host, sizeof host);
    port = ntohs(v6->sin6_port);
    return std::string("[") + host + "]:" + std::to_string(port);
  }
  const auto* v4 = reinterpret_cast<const sockaddr_in*>(&address);
  ::inet_ntop(AF_INET, &v4->sin_addr, host, sizeof host);
  port = ntohs(v4->sin_port);
  return std::string(host) + ":" + std::to_string(port);
}

std::error_code send_all(const Socket& socket, std::span<const std::byte> bytes) {
  while (!bytes.empty()) {
    const auto chunk = static_cast<SendSize>(bytes.size() > (1U << 30) ? (1U << 30) : bytes.size());
    const auto sent = ::send(socket.native(), reinterpret_cast<const char*>(bytes.data()), chunk, kSendFlags);
    if (sent < 0) {
#ifndef _WIN32
      if (errno == EINTR) continue;
#endif
      return last_socket_error();
    }
    bytes = bytes.subspan(static_cast<std::size_t>(sent));
  }
  return {};
}

std::error_code send_all(const Socket& socket, std::string_view text) {
  return send_all(socket, std::as_bytes(std::span(text.data(), text.size())));
}

std::size_t receive_some(const Socket& socket, std::span<std::byte> buffer, std::error_code& error) {
  error.clear();
  for (;;) {
    const auto chunk = static_cast<SendSize>(buffer.size() > (1U << 30) ? (1U << 30) : buffer.size());
    const auto received = ::recv(socket.native(), reinterpret_cast<char*>(buffer.data()), chunk, 0);
    if (received >= 0) return static_cast<std::size_t>(received);
#ifndef _WIN32
    if (errno == EINTR) continue;
#endif
    error = last_socket_error();
    return 0;
  }
}

bool wait_readable(const Socket& socket, int timeout_ms) {
#ifdef _WIN32
  fd_set readable;
  FD_ZERO(&readable);
  FD_SET(socket.native(), &readable);
  timeval timeout{timeout_ms / 1000, (timeout_ms % 1000) * 1000};
  return ::select(0, &readable, nullptr, nullptr, timeout_ms < 0 ? nullptr : &timeout) > 0;
#else
  pollfd entry{socket.native(), POLLIN, 0};
  for (;;) {
    const int ready = ::poll(&entry, 1, timeout_ms);
    if (ready < 0 && errno == EINTR) continue;
    return ready > 0;
  }
#endif
}

void shutdown_send(const Socket& socket) noexcept {
#ifdef _WIN32
  ::shutdown(socket.native(), SD_SEND);
#else
  ::shutdown(socket.native(), SHUT_WR);
#endif
}

void close_with_reset(Socket& socket) noexcept {
  linger option{};
  option.l_onoff = 1;
  option.l_linger = 0;
  ::setsockopt(socket.native(), SOL_SOCKET, SO_LINGER, reinterpret_cast<const char*>(&option), sizeof option);
  socket.close();
}

void set_no_delay(const Socket& socket) noexcept {
  const int on = 1;
  ::setsockopt(socket.native(), IPPROTO_TCP, TCP_NODELAY, reinterpret_cast<const char*>(&on), sizeof on);
}

std::size_t unread_bytes(const Socket& socket) noexcept {
#ifdef _WIN32
  u_long count = 0;
  if (::ioctlsocket(socket.native(), FIONREAD, &count) != 0) return 0;
#else
  int count = 0;
  if (::ioctl(socket.native(), FIONREAD, &count) != 0 || count < 0) return 0;
#endif
  return static_cast<std::size_t>(count);
}

}  // namespace iocp_chat
