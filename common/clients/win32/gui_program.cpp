// gui_program.cpp — the command line as UTF-16 words and output for a
// program without a console; see gui_program.hpp. Shared by both stages'
// WinAPI clients (iocp_chat::win32_client).
#include "gui_program.hpp"

// shellapi.h (CommandLineToArgvW) needs the windows.h it builds on first.
#include <windows.h>

#include <shellapi.h>

#include <cstdlib>

#include "wide_text.hpp"

namespace iocp_chat::v1 {

std::vector<std::wstring> command_line_words() {
  std::vector<std::wstring> result;
  int count = 0;
  LPWSTR* words = CommandLineToArgvW(GetCommandLineW(), &count);
  if (words == nullptr) return result;
  for (int i = 1; i < count; ++i) result.emplace_back(words[i]);
  LocalFree(words);  // CommandLineToArgvW allocates the array with LocalAlloc
  return result;
}

std::uint16_t parse_port(const std::wstring& text) {
  wchar_t* end = nullptr;
  const unsigned long value = std::wcstoul(text.c_str(), &end, 10);
  if (text.empty() || *end != L'\0' || value == 0 || value > 65535) return 0;
  return static_cast<std::uint16_t>(value);
}

void tell_user(std::wstring_view text, bool is_error, const wchar_t* caption) {
  HANDLE out = GetStdHandle(is_error ? STD_ERROR_HANDLE : STD_OUTPUT_HANDLE);
  if ((out == nullptr || out == INVALID_HANDLE_VALUE) && AttachConsole(ATTACH_PARENT_PROCESS)) {
    out = CreateFileW(L"CONOUT$", GENERIC_READ | GENERIC_WRITE, FILE_SHARE_READ | FILE_SHARE_WRITE, nullptr,
                      OPEN_EXISTING, 0, nullptr);
  }
  if (out == nullptr || out == INVALID_HANDLE_VALUE) {
    const std::wstring message(text);
    const auto icon = static_cast<UINT>(is_error ? MB_ICONERROR : MB_ICONINFORMATION);
    MessageBoxW(nullptr, message.c_str(), caption, MB_OK | icon);
    return;
  }
  DWORD written = 0;
  DWORD mode = 0;
  if (GetConsoleMode(out, &mode)) {
    // A real console takes UTF-16 directly.
    WriteConsoleW(out, text.data(), static_cast<DWORD>(text.size()), &written, nullptr);
  } else {
    // A pipe or a file gets UTF-8, like everything else this project writes.
    const std::string bytes = utf8_from_wide(text);
    WriteFile(out, bytes.data(), static_cast<DWORD>(bytes.size()), &written, nullptr);
  }
}

}  // namespace iocp_chat::v1
