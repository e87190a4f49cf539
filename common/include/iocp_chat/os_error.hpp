// os_error.hpp — errors that carry the operating system's own words.
//
// IOCP idea: a completion reports failure as a bare number (GetLastError,
// WSAGetLastError, or an io_uring `-errno`). Wrapping it in std::error_code
// with this category keeps the number and turns it into the OS's message —
// FormatMessageW on Windows, strerror_r on Linux — so a log line says
// "An existing connection was forcibly closed by the remote host" or
// "Connection reset by peer" instead of "10054" or "104".
#pragma once

#include <string>
#include <string_view>
#include <system_error>

namespace iocp_chat {

/// The error category of OS error numbers (Win32/Winsock codes or errno values).
const std::error_category& os_category() noexcept;

/// Wraps an OS error number.
inline std::error_code os_error(int code) noexcept { return {code, os_category()}; }

/// The calling thread's last error (GetLastError on Windows, errno elsewhere).
std::error_code last_os_error() noexcept;

/// The calling thread's last socket error (WSAGetLastError on Windows, errno elsewhere).
std::error_code last_socket_error() noexcept;

/// Throws std::system_error whose what() is "<what>: <OS message>".
[[noreturn]] void throw_os_error(std::error_code error, std::string_view what);

}  // namespace iocp_chat
