// wide_text.hpp — UTF-8 (the wire) to UTF-16 (the screen) and back.
//
// WinAPI idea: the "W" functions (SetDlgItemTextW, LB_ADDSTRING sent with
// SendDlgItemMessageW, ...) take UTF-16 text and show any script, Korean
// included; the "A" functions would squeeze text through the machine's ANSI
// code page and lose it. The protocol carries UTF-8, so the client converts
// at the edge: MultiByteToWideChar(CP_UTF8) for what arrives,
// WideCharToMultiByte(CP_UTF8) for what the user typed.
//
// Shared by both stages' WinAPI clients, so it lives in
// common/clients/win32/ (iocp_chat::win32_client).
#pragma once

// WIN32_LEAN_AND_MEAN and NOMINMAX come with iocp_chat::common (common/CMakeLists.txt).
#include <windows.h>

#include <string>
#include <string_view>

namespace iocp_chat::v1 {

/// UTF-8 bytes as UTF-16; invalid bytes become U+FFFD (no MB_ERR_INVALID_CHARS:
/// a peer's bad bytes must not hide the rest of its line).
inline std::wstring wide_from_utf8(std::string_view text) {
  if (text.empty()) return {};
  const int length = static_cast<int>(text.size());
  const int size = MultiByteToWideChar(CP_UTF8, 0, text.data(), length, nullptr, 0);
  std::wstring result(static_cast<std::size_t>(size > 0 ? size : 0), L'\0');
  if (size > 0) MultiByteToWideChar(CP_UTF8, 0, text.data(), length, result.data(), size);
  return result;
}

/// UTF-16 text as UTF-8 bytes.
inline std::string utf8_from_wide(std::wstring_view text) {
  if (text.empty()) return {};
  const int length = static_cast<int>(text.size());
  const int size = WideCharToMultiByte(CP_UTF8, 0, text.data(), length, nullptr, 0, nullptr, nullptr);
  std::string result(static_cast<std::size_t>(size > 0 ? size : 0), '\0');
  if (size > 0) {
    WideCharToMultiByte(CP_UTF8, 0, text.data(), length, result.data(), size, nullptr, nullptr);
  }
  return result;
}

}  // namespace iocp_chat::v1
