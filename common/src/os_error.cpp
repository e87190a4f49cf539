// os_error.cpp — the OS error category: FormatMessageW (converted to UTF-8)
// on Windows, the XSI strerror_r on Linux.
#include "iocp_chat/os_error.hpp"

#include <cerrno>
#include <string>

#ifdef _WIN32
#include <windows.h>
#include <winsock2.h>
#else
#include <cstring>
#endif

namespace iocp_chat {
namespace {

#ifdef _WIN32
std::string utf8_from_wide(const wchar_t* text, int length) {
  const int size = WideCharToMultiByte(CP_UTF8, 0, text, length, nullptr, 0, nullptr, nullptr);
  std::string result(static_cast<std::size_t>(size > 0 ? size : 0), '\0');
  if (size > 0) {
    WideCharToMultiByte(CP_UTF8, 0, text, length, result.data(), size, nullptr, nullptr);
  }
  return result;
}
#endif

/// Error numbers of the OS, named by the OS itself.
class OsCategory final : public std::error_category {
 public:
  const char* name() const noexcept override { return "os"; }

  std::string message(int code) const override {
#ifdef _WIN32
    wchar_t* buffer = nullptr;
    const DWORD length = FormatMessageW(
        FORMAT_MESSAGE_ALLOCATE_BUFFER | FORMAT_MESSAGE_FROM_SYSTEM | FORMAT_MESSAGE_IGNORE_INSERTS, nullptr,
        static_cast<DWORD>(code), 0, reinterpret_cast<wchar_t*>(&buffer), 0, nullptr);
    std::string text;
    if (length > 0 && buffer != nullptr) {
      text = utf8_from_wide(buffer, static_cast<int>(length));
    }
    LocalFree(buffer);
    while (!text.empty() &&
           (text.back() == '\n' || text.back() == '\r' || text.back() == ' ' || text.back() == '.')) {
      text.pop_back();  // FormatMessage ends its sentences with ".\r\n".
    }
    if (text.empty()) {
      text = "error " + std::to_string(code);
    }
    return text + " (" + std::to_string(code) + ")";
#else
    char buffer[256] = {};
    // The GNU strerror_r may return a static string instead of filling buffer.
    const char* text = ::strerror_r(code, buffer, sizeof buffer);
    return std::string(text) + " (" + std::to_string(code) + ")";
#endif
  }
};

}  // namespace

const std::error_category& os_category() noexcept {
  static const OsCategory category;
  return category;
}

std::error_code last_os_error() noexcept {
#ifdef _WIN32
  return os_error(static_cast<int>(GetLastError()));
#else
  return os_error(errno);
#endif
}

std::error_code last_socket_error() noexcept {
#ifdef _WIN32
  return os_error(WSAGetLastError());
#else
  return os_error(errno);
#endif
}

void throw_os_error(std::error_code error, std::string_view what) {
  throw std::system_error(error, std::string(what));
}

}  // namespace iocp_chat
